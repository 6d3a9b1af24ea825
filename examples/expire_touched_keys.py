# Gives every key that HSET touches under 'cache:*' a 60 s expiry, by hooking the command:
# the real HSET runs first (call_next), then the key gets its TTL.
# redis-cli RG.PYEXECUTE "$(cat examples/expire_touched_keys.py)"
def expire_after_hset(args):
    reply = call_next(*args[1:])
    execute('EXPIRE', args[1], '60')
    return reply

# convertToStr=False keeps HSET's integer reply an integer for the client.
GB('CommandReader').map(expire_after_hset).register(hook='hset', keyprefix='cache:', mode='sync', convertToStr=False)
