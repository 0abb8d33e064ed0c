"""Instruction search, retrieval and program versions, offline: MIPROv2, COPRO, GEPA, KNNFewShot.

    python examples/optimize_search_offline.py   (needs the extras: pip install 'dspex[mipro,gepa]')

The LM is FakeLLMServer's deterministic "student": it answers "mirror lantern"
right only when its prompt teaches the rule, by a demo of it or by the task's
instruction phrase. Asked to propose an instruction, it proposes that phrase
when it is shown solved examples or feedback naming right answers (as
MIPROv2's and GEPA's grounded proposers show it), else one of a few wrong
phrasings. The server also serves deterministic embeddings on /v1/embeddings.
So each optimizer's lift is visible, and reproducible, without a model or key.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dspex as dx
from dspex.testing import FakeLLMServer, StudentTask


def feedback(gold: dx.Example, pred: dx.Prediction, trace: object = None, pred_name: object = None,
             pred_trace: object = None) -> dx.Prediction:
    """A GEPA metric: a score plus text feedback the reflection LM can learn from."""
    ok = gold.answer == pred.answer
    return dx.Prediction(score=float(ok), feedback="Correct." if ok else f"The right answer is {gold.answer}.")


def main() -> None:
    task = StudentTask()
    trainset, devset = task.examples(24, seed=1), task.examples(30, seed=2)
    with FakeLLMServer(student=task) as server, tempfile.TemporaryDirectory() as tmp:
        lm = dx.LM("openai/student", api_base=server.url + "/v1", api_key="sk-offline", cache=False)
        dx.configure(lm=lm)
        program = dx.Predict("question -> answer")
        evaluate = dx.Evaluate(devset=devset, metric=dx.metrics.exact_match, concurrency=16)
        print(f"uncompiled: {evaluate(program).score}%")

        # 1. MIPROv2: demo-set candidates + grounded instruction proposals, searched with seeded TPE.
        mipro = dx.MIPROv2(metric=dx.metrics.exact_match, auto=None, num_candidates=4, max_bootstrapped_demos=2,
                           max_labeled_demos=2, seed=9)
        best = mipro.compile(program, trainset=trainset, valset=devset[:20], num_trials=6, minibatch_size=10)
        print(f"MIPROv2: {evaluate(best).score}% with instruction {best.signature.instructions!r}")

        # 2. COPRO: coordinate ascent over proposed instructions, scored on the trainset.
        copro = dx.COPRO(metric=dx.metrics.exact_match, breadth=4, depth=2).compile(program, trainset=trainset[:12])
        print(f"COPRO: {evaluate(copro).score}% after {copro.total_calls} candidates")

        # 3. GEPA: reflective prompt evolution with a Pareto frontier over validation examples.
        gepa = dx.GEPA(metric=feedback, max_metric_calls=60, reflection_lm=lm, track_stats=True)
        evolved = gepa.compile(program, trainset=trainset[:12], valset=devset[:10])
        print(f"GEPA: {evaluate(evolved).score}% from {len(evolved.detailed_results['candidates'])} candidates")

        # 4. KNNFewShot: per call, bootstrap demos from the nearest train examples (embeddings over HTTP).
        embedder = dx.Embedder("openai/embed", api_base=server.url + "/v1", api_key="sk-offline")
        knn = dx.KNNFewShot(4, trainset, embedder, metric=dx.metrics.exact_match, max_bootstrapped_demos=2,
                            max_labeled_demos=4).compile(program)
        print(f"KNNFewShot: {evaluate(knn).score}%")

        # 5. Versions: save each compiled program with its score and lineage; load any version back.
        store = Path(tmp) / "store.sqlite"
        first = dx.save_version(program, "qa", store=store, score=0.0)
        number = dx.save_version(best, "qa", store=store, score=evaluate(best).score, optimizer=mipro,
                                 parent=("qa", first))  # compiled from version 1
        print(f"saved qa v{number}; v1 reloads at {evaluate(dx.load('qa', store=store, version=1)).score}%")


if __name__ == "__main__":
    main()
