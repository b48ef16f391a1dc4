"""Run the unittest modules under the given directories; print one line
"pyrun: P passed, F failed, S skipped" for test/run-all to add up."""
import os
import sys
import unittest

loader = unittest.TestLoader()
suite = unittest.TestSuite()
for d in sys.argv[1:]:
    sys.path.insert(0, os.path.abspath(d))
    suite.addTests(loader.discover(d, pattern="test_*.py", top_level_dir=d))
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
print("pyrun: %d passed, %d failed, %d skipped" % (result.testsRun - bad - skipped, bad, skipped))
sys.exit(1 if bad else 0)
