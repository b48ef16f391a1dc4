"""Run the unittest modules under the given directories, or the given test
files; print one line "pyrun: P passed, F failed, S skipped" for
test/run-all to add up."""
import os
import sys
import unittest

loader = unittest.TestLoader()
suite = unittest.TestSuite()
for arg in sys.argv[1:]:
    if os.path.isdir(arg):
        sys.path.insert(0, os.path.abspath(arg))
        suite.addTests(loader.discover(arg, pattern="test_*.py", top_level_dir=arg))
    else:
        d, name = os.path.split(os.path.abspath(arg))
        sys.path.insert(0, d)
        suite.addTests(loader.loadTestsFromName(name[:-3] if name.endswith(".py") else name))
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
print("pyrun: %d passed, %d failed, %d skipped" % (result.testsRun - bad - skipped, bad, skipped))
sys.exit(1 if bad else 0)
