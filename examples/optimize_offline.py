"""Evaluate and optimize a program offline: metric, Evaluate, BootstrapFewShot, random search.

    python examples/optimize_offline.py

The LM is FakeLLMServer's deterministic "student" on loopback: it answers a
question such as "mirror lantern" (apply the named rule to the word) right
only when its prompt holds a correct demo of that rule. So the uncompiled
program scores 0 %, and an optimizer that puts good demos into the prompt
lifts the score, which makes the whole loop visible without a model or key.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dspex as dx
from dspex.testing import FakeLLMServer, StudentTask


def main() -> None:
    task = StudentTask()
    trainset = task.examples(24, seed=1)  # dx.Example(question=..., answer=...).with_inputs("question")
    devset = task.examples(30, seed=2)
    print(f"task: {devset[0].question!r} -> {devset[0].answer!r}")

    with FakeLLMServer(student=task) as server:  # a real HTTP server on 127.0.0.1, own thread
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-offline", cache=False)
        dx.configure(lm=lm)

        # 1. A metric is a plain function of (example, prediction[, trace]).
        program = dx.Predict("question -> answer")
        evaluate = dx.Evaluate(devset=devset, metric=dx.metrics.exact_match, concurrency=16)
        print(f"uncompiled: {evaluate(program).score}%")

        # 2. BootstrapFewShot: run a teacher (the program with labeled demos) on the trainset,
        #    keep the traces the metric accepts as demos. The teacher calls run concurrently.
        optimizer = dx.BootstrapFewShot(metric=dx.metrics.exact_match, max_bootstrapped_demos=4,
                                        max_labeled_demos=8, concurrency=16)
        compiled = optimizer.compile(program, trainset=trainset)
        traced = sum(1 for d in compiled.demos if d.get("augmented"))
        print(f"BootstrapFewShot: {evaluate(compiled).score}% with {traced} traced + "
              f"{len(compiled.demos) - traced} labeled demos; the student still has {len(program.demos)}")

        # 3. Random search over bootstrapped demo sets, scored on a validation set.
        search = dx.BootstrapFewShotWithRandomSearch(metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                                                     max_labeled_demos=2, num_candidate_programs=4)
        best = search.compile(program, trainset=trainset, valset=devset[:12])
        ranked = ", ".join(f"seed {c['seed']}: {c['score']}%" for c in best.candidate_programs[:3])
        print(f"random search: best of {len(best.candidate_programs)} candidates ({ranked})")

        # 4. A compiled program saves its demos as DSPy-format JSON and loads back.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "compiled.json"
            compiled.save(path)
            restored = dx.Predict("question -> answer").load(path)
            print(f"reloaded: {evaluate(restored).score}%")


if __name__ == "__main__":
    main()
