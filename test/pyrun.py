"""Run the unittest modules under the given directories, or the given test
files; print one line "pyrun: P passed, F failed, S skipped" for
test/run-all to add up."""
import os
import sys
import time
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
spent = {}  # seconds per test module, for keeping CI's time in view


class TimedResult(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        mod = type(test).__module__
        spent[mod] = spent.get(mod, 0.0) + time.monotonic() - self._t0
        super().stopTest(test)


t_all = time.monotonic()
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=TimedResult).run(suite)
slow = sorted(spent.items(), key=lambda kv: -kv[1])[:8]
print("pyrun: %.0f s; slowest modules: %s" % (time.monotonic() - t_all,
      ", ".join("%s %.0f s" % kv for kv in slow)))
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
print("pyrun: %d passed, %d failed, %d skipped" % (result.testsRun - bad - skipped, bad, skipped))
sys.exit(1 if bad else 0)
