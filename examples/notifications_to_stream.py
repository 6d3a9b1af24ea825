# Reliable keyspace notifications: every change of a key under 'watched:*' is appended, in the
# writing command itself (sync mode), to the stream 'notifications'.
# redis-cli RG.PYEXECUTE "$(cat examples/notifications_to_stream.py)"
GB('KeysReader').\
    foreach(lambda r: execute('XADD', 'notifications', '*', 'key', r['key'], 'event', r['event'])).\
    register(prefix='watched:*', mode='sync', readValue=False)
