# The average of the numeric 'age' field of the hashes under 'user:*'.
# redis-cli RG.PYEXECUTE "$(cat examples/average_field.py)"
GB('KeysReader').\
    filter(lambda r: r['type'] == 'hash' and 'age' in r['value']).\
    map(lambda r: float(r['value']['age'])).\
    avg().\
    run('user:*')
