"""What the CLI test scripts share (test_power_cli.py, test_run_cli.py): the failure type, checks
on a finished `pals` process, case selection from the command line, and running one case in a
private folder that must be left as found."""

import tempfile
import traceback


class CaseFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CaseFailure(message)


def expect(result, code, *substrings, stream="stderr"):
    """`result` (subprocess.run's) exited with `code` and its `stream` holds every substring."""
    text = getattr(result, stream)
    check(result.returncode == code,
          f"{result.args[1:]}: exit {result.returncode}, expected {code}\n"
          f"stdout: {result.stdout}\nstderr: {result.stderr}")
    for s in substrings:
        check(s in text, f"{result.args[1:]}: {stream} lacks {s!r}:\n{text}")


def select_cases(cases, case, expect_cases, script):
    """(names to run, None), or (None, exit code) for --expect-cases and unknown names."""
    if expect_cases is not None:
        expected = sorted(c for c in expect_cases.split(",") if c)
        if expected != sorted(cases):
            print(f"tests/cli/CMakeLists.txt lists {expected}, {script} has {sorted(cases)}")
            return None, 1
        return None, 0
    names = sorted(cases) if case == "all" else [case]
    unknown = [n for n in names if n not in cases]
    if unknown:
        print(f"unknown case(s) {unknown}; known: {sorted(cases)}")
        return None, 2
    return names, None


def run_case(name, fn, make_env, prefix):
    """Runs `fn(env)` with env = make_env(private folder), then env.assert_untouched(); prints
    ok / FAIL / ERROR and returns whether the case passed. Calls env.close() if it has one."""
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{name}-") as folder:
        e = make_env(folder)
        try:
            fn(e)
            e.assert_untouched()
        except CaseFailure as failure:
            print(f"FAIL {name}: {failure}")
            return False
        except Exception:
            print(f"ERROR {name}:\n{traceback.format_exc()}")
            return False
        finally:
            if hasattr(e, "close"):
                e.close()
    print(f"ok   {name}")
    return True
