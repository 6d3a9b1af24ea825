# Stream logger: every entry added to a stream under 'events:' is copied into the list
# 'log:<stream>' as "<id> <field>=<value> ...", in order, by a StreamReader registration that
# reads in batches of up to 100 entries (or whatever arrived within 50 ms) and trims what it
# has copied.
# redis-cli RG.PYEXECUTE "$(cat examples/stream_logger.py)"
def line(record):
    fields = ' '.join('%s=%s' % (k, v) for k, v in sorted(record['value'].items()))
    return record['key'], '%s %s' % (record['id'], fields)

GB('StreamReader').\
    map(line).\
    foreach(lambda kv: execute('RPUSH', 'log:' + kv[0], kv[1])).\
    register(prefix='events:*', batch=100, duration=50)
