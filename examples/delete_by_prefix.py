# Deletes every key under 'session:*' and replies with how many were deleted.
# redis-cli RG.PYEXECUTE "$(cat examples/delete_by_prefix.py)"
GB('KeysOnlyReader').\
    foreach(lambda key: execute('DEL', key)).\
    count().\
    run('session:*')
