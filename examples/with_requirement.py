# A recipe that uses a requirement: the version of the 'redis' client package, installed for
# the script by gears-rs' requirements manager.
# redis-cli RG.PYEXECUTE "$(cat examples/with_requirement.py)" REQUIREMENTS redis==4.5.1
GB('ShardsIDReader').map(lambda x: __import__('redis').__version__).run()
