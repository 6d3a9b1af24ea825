# Estimates pi from 200,000 random points with a PythonReader generator.
# redis-cli RG.PYEXECUTE "$(cat examples/monte_carlo_pi.py)"
import random

def points():
    rng = random.Random(7)
    for _ in range(200000):
        yield (rng.random(), rng.random())

GB('PythonReader').\
    map(lambda p: 1 if p[0] * p[0] + p[1] * p[1] <= 1.0 else 0).\
    aggregate((0, 0), lambda a, r: (a[0] + r, a[1] + 1), lambda a, r: (a[0] + r[0], a[1] + r[1])).\
    map(lambda a: round(4.0 * a[0] / a[1], 2)).\
    run(points)
