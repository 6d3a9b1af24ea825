# The Gears event loop and the async helpers scripts see (runtime.md §6), loaded at start as
# the module `redisgears_async`: importable, so cloudpickle pickles its functions by reference.
import asyncio
import collections.abc
from threading import Thread
from redisgears import captureContext as _captureContext
from redisgears import getGearsSession, setGearsSession, isInAtomicBlock, log
from redisgears import registerGearsThread


class GearsFuture(asyncio.Future):
    '''
    A future of the Gears event loop: callbacks added to it run in the session that created
    it, and awaiting it inside atomic() is refused.
    '''

    def __init__(self, *, loop=None):
        super().__init__(loop=loop)
        self.gearsSession = getGearsSession()

    def add_done_callback(self, fn, *, context=None):
        s = self.gearsSession

        def inSession(f):
            setGearsSession(s)
            try:
                fn(f)
            except Exception as e:
                log('Exception in a GearsFuture done callback: %s' % str(e), level='warning')
            finally:
                setGearsSession(None)
        super().add_done_callback(inSession, context=context)

    def __await__(self):
        if isInAtomicBlock():
            raise Exception('await is not allow inside atomic block')
        return super().__await__()

    __iter__ = __await__


class _GearsLoop(asyncio.SelectorEventLoop):
    def create_future(self):
        return GearsFuture(loop=self)


class _InContext(collections.abc.Coroutine):
    '''Runs a coroutine with the session (and hook, and client link) it was created with
    current around each of its steps on the event loop thread.'''
    __slots__ = ('it', 'ctx')

    def __init__(self, coro, ctx):
        self.it = coro.__await__()
        self.ctx = ctx

    def send(self, value):
        self.ctx.enter()
        try:
            return self.it.send(value)
        finally:
            self.ctx.exit()

    def throw(self, *args):
        self.ctx.enter()
        try:
            return self.it.throw(*args)
        finally:
            self.ctx.exit()

    def close(self):
        self.it.close()

    def __await__(self):
        return self


loop = _GearsLoop()


def _loopMain():
    registerGearsThread()
    asyncio.set_event_loop(loop)
    loop.run_forever()


Thread(target=_loopMain, name='gears-loop', daemon=True).start()


def _scheduleStep(coro, ctx, done):
    def start():
        loop.create_task(_InContext(coro, ctx)).add_done_callback(done)
    loop.call_soon_threadsafe(start)


def _setRunResult(f, res):
    def setIt():
        if not f.done():
            f.set_result(res)
    loop.call_soon_threadsafe(setIt)


def createFuture():
    return loop.create_future()


def setFutureResults(f, res):
    loop.call_soon_threadsafe(f.set_result, res)


def setFutureException(f, e):
    if not isinstance(e, Exception):
        e = Exception(str(e))
    loop.call_soon_threadsafe(f.set_exception, e)


def runCoroutine(cr, f=None, delay=0, s=None):
    ctx = _captureContext(s)

    async def runIt():
        if delay:
            await asyncio.sleep(delay)
        try:
            res = await cr
        except Exception as e:
            if f is not None:
                try:
                    f.continueFailed(e)
                except Exception as e1:
                    log('Failed setting future failure, error="%s"' % str(e1), level='warning')
            return
        if f is not None:
            try:
                f.continueRun(res)
            except Exception as e1:
                log('Failed setting future result, error="%s"' % str(e1), level='warning')

    loop.call_soon_threadsafe(lambda: loop.create_task(_InContext(runIt(), ctx)))
