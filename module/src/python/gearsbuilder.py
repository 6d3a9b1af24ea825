# The GearsBuilder prelude, run once in __main__ at load; sessions start from a copy of it.
# Users see its frames in tracebacks (compiled as "<string>"), so the lines that raise for them
# match RedisGears 1.2.13: GB() 84, primitives 187, run() 171-172, register() 183, avg() 155,
# the aggregate and distinct lambdas 98 and 145. Keep them there (tests check).
# (RG.PYPROFILE output also names these lines, e.g. <string>:176(<lambda>) for register().)
import redisgears
import redisgears as rg
from redisgears import gearsCtx
from redisgears import PyFlatExecution
from redisgears import log
from redisgears import executeCommand as execute
from redisgears import config_get as configGet
from redisgears import flatError as flat_error
import copy
import sys
from threading import Thread

if not hasattr(sys, 'argv'):
    sys.argv = ['']
__name__ = 'not_main'

def gearsConfigGet(key, default=None):
    val = configGet(key)
    return val if val is not None else default

def genDeprecated(deprecatedName, name, target):
    def method(*argc, **nargs):
        rg._warn('%s is deprecated, use %s instead' % (str(deprecatedName), str(name)))
        return target(*argc, **nargs)
    return method


Log = genDeprecated('Log', 'log', log)
ConfigGet = genDeprecated('ConfigGet', 'configGet', configGet)
GearsConfigGet = genDeprecated('GearsConfigGet', 'gearsConfigGet', gearsConfigGet)


def createKeysOnlyReader(pattern='*', count=1000, noScan=False, patternGenerator=None):
    # The generator behind GB('KeysOnlyReader'): the names of the keys matching pattern.
    def keysOnlyReader():
        p, exact = patternGenerator() if patternGenerator is not None else (pattern, noScan)
        if exact:
            try:
                if execute('exists', p) == 1:
                    yield p
            except Exception:
                pass
            return
        cursor = '0'
        while True:
            cursor, keys = execute('scan', cursor, 'MATCH', str(p), 'COUNT', str(count))
            for k in keys:
                yield k
            if cursor == '0':
                break
    return keysOnlyReader


def shardReaderCallback():
    # The generator behind GB('ShardsIDReader'): the id of the shard it runs on.
    res = execute('RG.INFOCLUSTER')
    if res == 'no cluster mode':
        yield '1'
    else:
        yield res[1]


class GearsBuilder():
    '''
    Builds a RedisGears pipeline: GB(reader='KeysReader', defaultArg='*', desc=None).
    Every operation appends steps to the plan and returns the builder itself, so calls chain:
        GB().map(lambda r: r['key']).filter(lambda k: k.startswith('user:')).run()
    run() starts an execution of the plan; register() makes it run on events.
    The primitive operations (map, filter, foreach, flatmap, accumulate, localgroupby, groupby,
    batchgroupby, repartition, collect, limit) are forwarded to the native plan and take
    positional arguments only.
    '''

    def __init__(self, reader='KeysReader', defaultArg='*', desc=None):
        self.realReader = reader
        if(reader == 'ShardsIDReader' or reader == 'KeysOnlyReader'):
            reader = 'PythonReader'
        self.reader = reader
        self.gearsCtx = gearsCtx(self.reader, desc)
        self.defaultArg = defaultArg

    def aggregate(self, z, seqOp, combOp):
        '''
        Aggregates all the records into one value on the initiating shard.
        z: the zero value, deep-copied whenever it is used, so a mutable zero is safe
        seqOp: seqOp(accumulator, record) folds one record into the local accumulator
        combOp: combOp(accumulator, shardAccumulator) folds the shards' accumulators together
        A falsy accumulator (None, 0, empty) is replaced by a fresh copy of z before each call.
        When there are no records at all, nothing is emitted.
        In a cluster, seqOp runs on every shard and combOp on the initiator, after a collect.
        The result is a single record.
        '''
        self.accumulate(lambda a, r: seqOp(a if a else copy.deepcopy(z), r))
        self.collect()
        self.accumulate(lambda a, r: combOp(a if a else copy.deepcopy(z), r))
        return self

    def aggregateby(self, extractor, zero, seqOp, combOp):
        # Aggregates the records by extractor(record); emits {'key': k, 'value': v}. seqOp(key,
        # accumulator, record) runs per shard, combOp(key, accumulator, value) on the key's owner.
        seq = lambda k, a, r: seqOp(k, a if a else copy.deepcopy(zero), r)
        if getattr(seqOp, '__gears_native__', None) == 'count':
            seq = rg._native('count', seq)
        self.localgroupby(lambda x: extractor(x), seq)
        self.groupby(lambda r: r['key'], lambda k, a, r: combOp(k, a if a else copy.deepcopy(zero), r['value']))
        return self

    def __localAggregateby__(self, extractor, zero, aggregator):
        self.localgroupby(lambda x: extractor(x), lambda k, a, r: aggregator(k, a if a else copy.deepcopy(zero), r))
        return self

    def count(self):
        # Counts the records; emits nothing when there are none.
        # rg._native marks a lambda the engine runs natively; its repr and results are unchanged.
        self.accumulate(rg._native('count', lambda a, r: 1 + (a if a else 0)))
        self.collect()
        self.accumulate(lambda a, r: r + (a if a else 0))
        return self

    def countby(self, extractor=lambda x: x):
        '''
        Counts the records per key; emits {'key': k, 'value': n}.
        '''
        self.aggregateby(extractor, 0, rg._native('count', lambda k, a, r: 1 + a), lambda k, a, r: r + a)
        return self

    def sort(self, reverse=True):
        '''
        Sorts all the records (the default, reverse=True, gives ascending output).
        '''
        self.aggregate([], lambda a, r: a + [r], lambda a, r: a + r)
        self.map(lambda r: sorted(r, reverse=reverse))
        self.flatmap(lambda r: r)
        return self

    def distinct(self):
        '''
        Keeps one of each distinct (hashable) record.
        '''
        self.aggregate(set(), lambda a, r: a | set([r]), lambda a, r: a | r)
        self.flatmap(lambda x: list(x))
        return self

    def avg(self, extractor=lambda x: float(x)):
        '''
        The average of extractor(record) over all the records; nothing when there are none.
        extractor must be a Python function (a builtin such as float is refused); the default
        converts each record with float().
        '''
        self.map(extractor)
        self.aggregate((0, 0), lambda a, r: (a[0] + r, a[1] + 1), lambda a, r: (a[0] + r[0], a[1] + r[1]))
        self.map(lambda x: x[0] / x[1])
        return self

    def run(self, arg=None, convertToStr=True, collect=True, **kargs):
        if(convertToStr):
            self.gearsCtx.map(lambda x: str(x))
        if(collect):
            self.gearsCtx.collect()
        arg = arg if arg else self.defaultArg
        # The readers that are Python generators get their generator here; the other keyword
        # arguments go to the native run (and to the generator factory for KeysOnlyReader).
        if(self.realReader == 'ShardsIDReader'):
            arg = shardReaderCallback
        if(self.realReader == 'KeysOnlyReader'):
            arg = createKeysOnlyReader(arg, **kargs)
        return self.gearsCtx.run(arg, **kargs)

    def register(self, prefix='*', convertToStr=True, collect=True, **kargs):
        if(convertToStr):
            self.gearsCtx.map(lambda x: str(x))
        if(collect):
            self.gearsCtx.collect()
        kargs['prefix'] = prefix
        if('regex' in kargs):
            log('Using regex argument with register is deprecated and missleading, use prefix instead.', level='warning')
            kargs['prefix'] = kargs['regex']
        return self.gearsCtx.register(**kargs)

def createDecorator(f):
    def deco(self, *args):
        f(self.gearsCtx, *args)
        return self
    return deco


for k in dir(PyFlatExecution):
    if('_' in k):
        continue
    if(k in GearsBuilder.__dict__):
        continue
    setattr(GearsBuilder, k, createDecorator(getattr(PyFlatExecution, k)))

GB = GearsBuilder


# The rest of the names scripts find in their globals (runtime.md §2). Defined after the
# builder so the builder's lines above keep RedisGears' numbers.
from redisgears import atomicCtx as atomic
from redisgears import getMyHashTag as hashtag
from redisgears import isInAtomicBlock
from redisgears import registerGearsThread
from redisgears import getGearsSession
from redisgears import setGearsSession
from redisgears import callNext as call_next
from redisgears import getCommand as get_command
from redisgears import overrideReply as override_reply
import asyncio
import cProfile
import pstats
import io
from asyncio import Future


class GearsSession():
    '''
    Makes a session (from getGearsSession()) current for a block:
        with GearsSession(s): ...
    '''

    def __init__(self, s):
        self.s = s

    def __enter__(self):
        setGearsSession(self.s)
        return self

    def __exit__(self, *args):
        setGearsSession(None)


# cProfile helpers used by ProfileExecutions and RG.PYPROFILE (runtime.md §8b).
def profilerCreate():
    return cProfile.Profile()


def profileStart(p):
    p.enable()


def profileStop(p):
    p.disable()


def profileGetInfo(p, order):
    s = io.StringIO()
    ps = pstats.Stats(p, stream=s)
    ps.sort_stats(order)
    ps.print_stats()
    ps.print_callers()
    ps.print_callees()
    return s.getvalue()



# Async/await (runtime.md §6). The loop and helpers live in the importable module
# redisgears_async, so that registrations using them pickle them by reference.
from redisgears import gearsFutureCtx as gearsFuture
from redisgears import isAsyncAllow
from redisgears import registerTimeEvent as registerTE
from redisgears_async import GearsFuture, loop, createFuture, setFutureResults
from redisgears_async import setFutureException, runCoroutine, _scheduleStep, _setRunResult
