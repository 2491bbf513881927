"""ReDoS before/after (issue 23 item 7): one validation of a caller's ``^(a+)+$`` pattern
against a near-miss answer, which runs on the event loop and so stalls every other run for
as long as it takes. Before: jsonschema's own validator (Python's backtracking ``re``).
After: ``agentd.llm.schemas.validator`` (RE2, toolgen.validation).

    python -m bench.redos [--sizes 20,22,24,26,28]
"""

from __future__ import annotations

import argparse
import json
import time

import jsonschema

from agentd.llm.schemas import validator

SCHEMA = {"type": "string", "pattern": "^(a+)+$"}


def timed(check: object, answer: str) -> float:
    start = time.perf_counter()
    check.is_valid(answer)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20,22,24,26")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        answer = "a" * n + "!"
        before = timed(jsonschema.Draft202012Validator(SCHEMA), answer)
        after = timed(validator(SCHEMA), answer)
        rows.append({"chars": n + 1, "before_s": round(before, 4), "after_s": round(after, 6)})
        print(f"{n + 1:>3} chars: backtracking {before:8.3f} s   RE2 {after * 1e6:8.1f} µs")
    print(json.dumps({"redos_pattern": SCHEMA["pattern"], "rows": rows}))


if __name__ == "__main__":
    main()
