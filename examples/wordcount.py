# Word count over the 'text' field of every hash under 'doc:*'.
# redis-cli RG.PYEXECUTE "$(cat examples/wordcount.py)"
GB('KeysReader').\
    filter(lambda r: r['type'] == 'hash' and 'text' in r['value']).\
    flatmap(lambda r: r['value']['text'].lower().split()).\
    countby().\
    run('doc:*')
