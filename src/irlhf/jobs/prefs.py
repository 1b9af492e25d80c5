"""``irlhf prefs fit|rl|active``: learning from judgements between items, trajectory segments, or actively chosen pairs.

    irlhf prefs fit --comparisons prefs.jsonl            # (i, j, mu) rows, .jsonl or .csv
    irlhf prefs fit --rankings ranks.jsonl               # Plackett-Luce on {"ranking": [...]} rows
    irlhf prefs fit --synthetic 20                       # try it: 20 items, judgements from a known model
    irlhf prefs fit --comparisons prefs.csv --alpha 0.01 # with a Gaussian prior (needed when some item never loses)

Writes a run directory with ``scores.csv`` (item, score, standard error, rank), ``winners.json``
(Condorcet / Copeland / Borda, under the fitted model and from the raw judgements), a plot of the
scores with 95% intervals, the fitted preference matrix, ``summary.txt`` and ``report.html``.

    irlhf prefs rl --env CartPole-v1 --labels 200 --timesteps 50000 --labeller oracle
    irlhf prefs rl --env Pendulum-v1 --labeller noisy --set algo=sac --set labeller.beta=0.5

``prefs rl``: deep RL from trajectory preferences (``irlhf.preference.trajectory``, Christiano et al. 2017)
with a synthetic B-Pref labeller (``irlhf.preference.labellers``: oracle, mistake, noisy, skip, myopic,
equal). ``--set KEY=VALUE`` sets a ``trajectory.Config`` field, ``--set labeller.KEY=VALUE`` a teacher
parameter (beta, gamma, eps, skip_threshold, equal_threshold, relative_thresholds). Training and evaluation
happen before the run directory is made (bad input: one error line, exit 2, no directory). Writes
config.json, metrics.jsonl (one line per query round, then the final metrics), learning_curve.png (true
return vs timesteps and vs labels), reward_model.safetensors, policy.zip (SB3), preferences.npz (the
labelled pairs), summary.txt and report.html; the evaluation reports the policy's mean return, a random
policy's, the scripted expert's (where one exists) and the normalised score.

    irlhf prefs rl --env CartPole-v1 --labels 40 --labeller web --port 8765 --label-timeout 600

``--labeller web``: people answer the queries (which clip is better) on a labelling page the job serves while it
trains (``irlhf.label.people.WebLabeller``; server options as for ``irlhf label``). The run directory is made
first: its name is the label session, ``--db`` defaults to ``<run dir>/labels.sqlite``, and ``labels.jsonl``
holds the session's queries and answers at the end.

    irlhf prefs active --env driving --acquisition information --queries 30

``prefs active``: Bayesian active preference learning of a linear reward (``irlhf.preference.active``, Sadigh
et al. 2017; Bıyık et al. 2019) against a simulated person whose reward direction is the environment's hidden
``TRUE_W`` (``--answer-beta``: their rationality). Each query is the pair of pool trajectories the acquisition
(random, volume_removal, information, disagreement, thompson, max_regret) picks; after each answer the MH
posterior is updated. Writes config.json, metrics.jsonl (alignment E[w . w*] and seconds per query),
alignment.png, w.json (learned and true w), for driving best_trajectory.gif (the pool's best trajectory under
the learned w), summary.txt and report.html.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import time
from typing import Annotated, Any, Literal

import numpy as np

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, OneOf, Positive, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.core.rundir import RunDir
from irlhf.data.preferences import Comparisons, Rankings
from irlhf.envs.gym import SCRIPTED_EXPERTS, make_env
from irlhf.eval import active_preferences
from irlhf.eval.returns import score_policy
from irlhf.jobs._common import (LABELLER_CHOICES, PREF_MODELS, WEB, EnvId, Overrides, fmt, options_table,
                                parse_set, print_summary, reject_options, score_line, set_flags)
from irlhf.label import active as label_active
from irlhf.label.live import WebSession, web_options
from irlhf.preference import bradley_terry, duel, plackett_luce, trajectory
from irlhf.preference.labellers import make_labeller
from irlhf.report import Report
from irlhf.report.curves import return_vs_labels
from irlhf.report.rewards import preference_matrix, score_intervals

MODELS = PREF_MODELS


@dataclasses.dataclass(frozen=True)
class FitJobConfig(BaseConfig):
    """Options of ``irlhf prefs fit``.

    comparisons / rankings: path of a comparisons (.jsonl/.csv) or rankings (.jsonl) file; exactly one of
    them or ``synthetic``.  synthetic: number of items of a generated example (0 = off, else >= 2); it draws
    ``synthetic_comparisons`` judgements from a Bradley-Terry model with standard-normal scores.
    n_items: number of items (None = largest id + 1).  model: "auto" (Bradley-Terry for comparisons,
    Plackett-Luce for rankings), or force one (rankings are rank-broken into pairs for Bradley-Terry).
    alpha: prior weight (penalty alpha * ||theta||^2, >= 0).  seed: the synthetic example's seed.
    """

    comparisons: str | None = None
    rankings: str | None = None
    synthetic: NonNegativeInt = 0
    synthetic_comparisons: PositiveInt = 2000
    n_items: Annotated[int, Range(2)] | None = None
    model: Annotated[str, OneOf(MODELS)] = "auto"
    alpha: NonNegative = 0.0
    seed: Seed = 0

    def validate(self) -> None:
        if sum([self.comparisons is not None, self.rankings is not None, self.synthetic != 0]) != 1:
            raise ValidationError("prefs fit: give exactly one of --comparisons FILE, --rankings FILE or "
                                  "--synthetic N_ITEMS")
        if self.synthetic == 1:
            raise ValidationError(f"synthetic={self.synthetic!r}: expected >= 2 (or 0: no synthetic example)")
        if self.model == "plackett-luce" and self.rankings is None:
            raise ValidationError("model='plackett-luce' needs --rankings; comparisons (from a file or "
                                  "--synthetic) fit with bradley-terry")

    def command(self) -> str:
        source = (f"--comparisons {self.comparisons}" if self.comparisons else
                  f"--rankings {self.rankings}" if self.rankings else
                  f"--synthetic {self.synthetic} --synthetic-comparisons {self.synthetic_comparisons}")
        extra = f" --n-items {self.n_items}" if self.n_items else ""
        seed = f" --seed {self.seed}" if self.synthetic else ""  # only the synthetic example draws at random
        return f"irlhf prefs fit {source}{extra} --model {self.model} --alpha {self.alpha}{seed}"


def synthetic_comparisons(n_items: int, n_comparisons: int, seed: int) -> tuple[Any, Any]:
    """(true scores (n,), Comparisons) drawn from Bradley-Terry with theta ~ N(0, 1), uniform random pairs."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_items)
    i = rng.integers(0, n_items, n_comparisons)
    j = (i + rng.integers(1, n_items, n_comparisons)) % n_items
    p = 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
    return theta - theta.mean(), Comparisons(i, j, (rng.random(n_comparisons) < p).astype(float), n_items)


def run_fit(job: FitJobConfig, out: str = "runs") -> tuple[RunDir, dict[str, Any], list[str]]:
    """Load or generate the judgements, fit, compute winners, write the run directory."""
    truth = None
    rankings = None
    if job.comparisons is not None:
        comparisons = Comparisons.load(job.comparisons, n_items=job.n_items)
        source = f"{job.comparisons}: {len(comparisons)} comparisons"
    elif job.rankings is not None:
        rankings = Rankings.load(job.rankings, n_items=job.n_items)
        comparisons = rankings.to_comparisons()
        source = f"{job.rankings}: {len(rankings)} rankings ({len(comparisons)} pairs after rank breaking)"
    else:
        truth, comparisons = synthetic_comparisons(job.synthetic, job.synthetic_comparisons, job.seed)
        source = (f"synthetic: {len(comparisons)} Bradley-Terry judgements between {job.synthetic} items "
                  f"(scores ~ N(0, 1), seed {job.seed})")
    n = comparisons.n_items
    model = job.model if job.model != "auto" else ("plackett-luce" if rankings is not None else "bradley-terry")
    t0 = time.perf_counter()
    with_se = n <= bradley_terry.SE_LIMIT  # standard errors are opt-in: a dense (n, n) inverse
    if model == "plackett-luce":
        result = plackett_luce.fit(n, rankings, alpha=job.alpha, standard_errors=with_se)
    else:
        result = bradley_terry.fit(n, comparisons, alpha=job.alpha, standard_errors=with_se)
    seconds = time.perf_counter() - t0

    order = result.ranking()
    rank_of = np.empty(n, dtype=int)
    rank_of[order] = np.arange(1, n + 1)
    se = result.standard_errors
    fitted = result.probabilities()
    empirical = duel.preference_matrix(comparisons)

    def as_list(x: Any) -> Any:
        return None if x is None else [int(v) for v in np.atleast_1d(x)]

    winners = {
        "fitted": {"condorcet": duel.condorcet_winner(fitted), "copeland": as_list(duel.copeland_winners(fitted)),
                   "borda": as_list(duel.borda_winners(fitted))},
        "judgements": {"condorcet": duel.condorcet_winner(empirical),
                       "copeland": as_list(duel.copeland_winners(empirical)),
                       "borda": as_list(duel.borda_winners(empirical))},
    }
    metrics: dict[str, Any] = {"model": model, "n_items": n, "n_comparisons": len(comparisons),
                               "log_likelihood": result.log_likelihood, "n_iter": result.n_iter,
                               "converged": result.converged, "seconds": seconds}
    if truth is not None:
        metrics["correlation_with_truth"] = float(np.corrcoef(truth, result.scores)[0, 1])

    run = RunDir.create("prefs-fit", out)
    run.write_json("config.json", job.to_dict())
    run.log(**metrics)
    rows = ["item,score,standard_error,rank"] + [
        f"{k},{result.scores[k]:.10g},{'' if se is None else f'{se[k]:.10g}'},{rank_of[k]}" for k in range(n)]
    run.write_text("scores.csv", "\n".join(rows) + "\n")
    run.write_json("winners.json", winners)
    run.save_figure("scores.png", score_intervals(result.scores, result.standard_errors, order, truth))
    run.save_figure("preference_matrix.png", preference_matrix(fitted, order))
    files = ["config.json", "metrics.jsonl", "scores.csv", "winners.json", "scores.png", "preference_matrix.png"]

    top = order[: min(n, 10)]
    table = [[int(rank_of[k]), int(k), result.scores[k], None if se is None else se[k]] for k in top]
    report = Report(f"irlhf prefs fit: {model}")
    report.section("Run").text(f"Run directory {run.path.name}. Data: {source}.").code(job.command())
    report.section("Ranking").text(
        f"Mean-centred log-strengths (scores) with standard errors from the inverse Hessian; "
        f"log-likelihood {result.log_likelihood:.6g} ({result.n_iter} Newton steps, {seconds:.3f} s).").table(
        table, header=["rank", "item", "score", "standard error"])
    report.section("Winners").table(
        [[kind, str(winners["fitted"][kind]), str(winners["judgements"][kind])] for kind in ("condorcet", "copeland",
                                                                                          "borda")],
        header=["criterion", "under the fitted model", "from the raw judgements"])
    report.section("Plots").image(files[4], caption="Scores with 95% intervals, best first.").image(
        files[5], caption="Fitted preference matrix P(row item preferred to column item), items best first.")
    files += ["summary.txt", "report.html"]
    best = ", ".join(f"{int(k)} ({result.scores[k]:+.3f}" + ("" if se is None else f" +- {se[k]:.3f}") + ")"
                     for k in order[:5])
    summary = [
        f"irlhf prefs fit -> {run.path}",
        f"data: {source}; model {model}, alpha {job.alpha}",
        f"top items (score +- se): {best}",
        f"winners (fitted model): Condorcet {winners['fitted']['condorcet']}, Copeland "
        f"{winners['fitted']['copeland']}, Borda {winners['fitted']['borda']}",
        f"winners (raw judgements): Condorcet {winners['judgements']['condorcet']}, Copeland "
        f"{winners['judgements']['copeland']}, Borda {winners['judgements']['borda']}",
        f"log-likelihood {result.log_likelihood:.6g}; {result.n_iter} Newton steps, {seconds:.3f} s"
        + (f"; correlation with the true scores {metrics['correlation_with_truth']:.4f}" if truth is not None else ""),
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- prefs rl ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RlJobConfig(BaseConfig):
    """Options of ``irlhf prefs rl``: env (gymnasium id), labels (query budget), timesteps (RL steps), labeller
    (one of LABELLER_CHOICES), eval_episodes, seed, options (``trajectory.Config`` overrides; keys
    ``labeller.<name>`` are teacher parameters)."""

    env: EnvId = "CartPole-v1"
    labels: PositiveInt = 200
    timesteps: PositiveInt = 50_000
    labeller: Annotated[str, OneOf(LABELLER_CHOICES)] = "oracle"
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def command(self) -> str:
        parts = [f"irlhf prefs rl --env {self.env} --labels {self.labels} --timesteps {self.timesteps} "
                 f"--labeller {self.labeller} --eval-episodes {self.eval_episodes}"]
        return " ".join(parts + set_flags(self.options) + [f"--seed {self.seed}"])


def rl_setup(job: RlJobConfig, progress: bool) -> tuple[Any, Any]:
    """(trajectory.Config, labeller) from the job: defaults, then labels / timesteps / seed, then --set.
    The labeller is None for ``web`` (people: the caller's ``WebSession`` makes it once the server runs)."""
    values: dict[str, Any] = {"n_labels": job.labels, "total_timesteps": job.timesteps, "seed": job.seed,
                              "progress": progress}
    teacher: dict[str, Any] = {}
    for key, value in job.options.items():
        if key.startswith("labeller."):
            teacher[key[len("labeller."):]] = value
        else:
            values[key] = value
    if isinstance(values.get("reward_hidden_sizes"), list):
        values["reward_hidden_sizes"] = tuple(values["reward_hidden_sizes"])
    config = trajectory.Config.from_dict(values)
    if job.labeller == WEB:
        if teacher:
            raise ValidationError(f"--set {', '.join('labeller.' + k for k in teacher)}: teacher parameters are for "
                                  "the synthetic labellers; expected none with --labeller web")
        return config, None
    return config, make_labeller(job.labeller, seed=job.seed + 1, **teacher)


def run_rl(job: RlJobConfig, out: str = "runs", *, progress: bool = True,
           web: WebSession | None = None) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, train, evaluate, then write the run directory.

    ``web`` (with ``job.labeller == "web"``): people label through that session's page; it is started after
    validation, so its run directory (session name, default label store) exists before training.
    """
    config, labeller = rl_setup(job, progress)
    if (job.labeller == WEB) != (web is not None):
        raise ValidationError(f"labeller={job.labeller!r}: a WebSession is needed exactly with --labeller web")
    if web is not None:
        make_env(job.env).close()  # unknown env -> ValidationError before a server starts
        web.start()
        labeller = web.labeller(job.env, seed=job.seed + 1)
    t0 = time.perf_counter()
    result = trajectory.train(job.env, labeller, config)
    seconds = time.perf_counter() - t0
    metrics = score_policy(job.env, result.policy, SCRIPTED_EXPERTS.get(job.env), job.eval_episodes, job.seed)
    last = result.history[-1]
    fitted = [r for r in result.history if r.get("train_accuracy") is not None]
    metrics.update(seconds=seconds, timesteps=last["timesteps"], queries=last["queries"], labels=last["labels"],
                   labeller=repr(labeller), train_accuracy=fitted[-1]["train_accuracy"] if fitted else None,
                   reward_correlation=next((r["reward_correlation"] for r in reversed(result.history)
                                            if r.get("reward_correlation") is not None), None))

    run = web.run if web is not None else RunDir.create("prefs-rl", out)
    run.write_json("config.json", {"job": job.to_dict(), "trajectory": config.to_dict(),
                                   **({"web": web.options.to_dict()} if web is not None else {})})
    for row in result.history:
        run.log(**row)
    run.log(final=True, **metrics)
    trajectory.save_reward_model(run.file("reward_model.safetensors"), result.reward)
    buffer = io.BytesIO()
    result.model.save(buffer)
    with atomic_open(run.file("policy.zip"), "wb") as handle:
        handle.write(buffer.getvalue())
    result.dataset.save(run.file("preferences.npz"))
    curve = "learning_curve.png"
    run.save_figure(curve, return_vs_labels(result.history, metrics["expert_return_mean"],
                                            metrics["random_return_mean"]))
    files = ["config.json", "metrics.jsonl", curve, "reward_model.safetensors", "policy.zip", "preferences.npz",
             "summary.txt", "report.html"]
    people = web.export() if web is not None else None
    if people is not None:
        files.insert(-2, people[0])
    report = Report(f"irlhf prefs rl: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(job.command())
    report.section("Setup").text(
        f"Deep RL from preferences (Christiano et al. 2017): {config.algo.upper()} on a learned reward, an "
        f"ensemble of {config.ensemble_size} reward networks fitted to {metrics['labels']} labels "
        f"({metrics['queries']} queries) between {config.segment_length}-step segments from labeller "
        f"{labeller!r}, {config.selection} query selection, {config.rounds} rounds, "
        f"{metrics['timesteps']} timesteps, {seconds:.1f} s.").table(
        options_table(config), header=["option", "value"])
    report.section("Result").text(score_line(metrics)).table(
        [["learned policy: mean return", metrics["eval_return_mean"]],
         ["expert: mean return", fmt(metrics["expert_return_mean"], ".4g")],
         ["random policy: mean return", metrics["random_return_mean"]],
         ["normalized score (1 = expert, 0 = random)", fmt(metrics["normalized_score"], ".4g")],
         ["reward model: training accuracy", fmt(metrics["train_accuracy"], ".3f")],
         ["reward model: correlation with true segment returns", fmt(metrics["reward_correlation"], ".3f")]],
        header=["quantity", "value"])
    report.section("Rounds").table(
        [[r["round"], r["timesteps"], r["queries"], r["labels"], fmt(r.get("heldout_accuracy"), ".3f"),
          fmt(r.get("train_loss"), ".3f"), fmt(r.get("reward_correlation"), ".3f"),
          fmt(r.get("mean_true_return"), ".1f")]
         for r in result.history],
        header=["round", "timesteps", "queries", "labels", "held-out accuracy", "train loss",
                "reward correlation", "mean true return"]).image(
        curve, caption="Mean true return of the agent's recent training episodes against timesteps and labels.")
    summary = [f"irlhf prefs rl -> {run.path}",
               f"{job.env}: {config.algo} on a learned reward, {metrics['labels']} labels ({metrics['queries']} "
               f"queries, labeller {job.labeller}), {metrics['timesteps']} timesteps, {seconds:.1f} s",
               score_line(metrics),
               f"reward model: training accuracy {fmt(metrics['train_accuracy'], '.3f')}, correlation with true segment "
               f"returns {fmt(metrics['reward_correlation'], '.3f')}",
               *([people[1]] if people is not None else []),
               f"report: {run.file('report.html')}"]
    report.finish(run, files, summary)
    return run, metrics, summary


def run_rl_command(args: argparse.Namespace) -> int:
    job = RlJobConfig(env=args.env, labels=args.labels, timesteps=args.timesteps, labeller=args.labeller,
                      eval_episodes=args.eval_episodes, seed=args.seed, options=parse_set(args.options))
    options = web_options(args, job.labeller == WEB, "--labeller web")
    with WebSession(options, "prefs-rl", args.out) if options is not None else contextlib.nullcontext() as web:
        _, _, summary = run_rl(job, args.out, progress=not args.no_progress, web=web)
    return print_summary(summary)


# ----------------------------------------------------------------------------------------------- active
@dataclasses.dataclass(frozen=True)
class ActiveJobConfig(BaseConfig):
    """Options of ``irlhf prefs active``: env, acquisition, queries (answers asked), answer_beta (the simulated
    person's rationality), pool (trajectories to choose pairs from), candidates (pairs scored per query), seed."""

    env: Literal["driving", "lds", "mountaincar"] = "driving"
    acquisition: Annotated[str, OneOf(active_preferences.ACQUISITIONS)] = "information"
    queries: PositiveInt = 30
    answer_beta: Positive = 10.0
    pool: Annotated[int, Range(2)] = 1000
    candidates: PositiveInt = 5000
    seed: Seed = 0
    answerer: Literal["simulated", "web"] = "simulated"

    def command(self) -> str:
        return (f"irlhf prefs active --env {self.env} --acquisition {self.acquisition} --queries {self.queries} "
                f"--answer-beta {self.answer_beta:g} --pool {self.pool} --candidates {self.candidates} "
                f"--seed {self.seed}" + (" --answerer web" if self.answerer == WEB else ""))


def run_active(job: ActiveJobConfig, out: str = "runs",
               web: WebSession | None = None) -> tuple[RunDir, list[str]]:
    """The active loop against a simulated person (or, with ``web``, a person on the labelling page: the
    ``irlhf.label.active`` answerer), then the run directory (nothing is written on bad input)."""
    env = active_preferences.ENVS[job.env]
    config = active_preferences.Config(env=job.env, acquisitions=(job.acquisition,), answer_betas=(job.answer_beta,),
                                       seeds=(job.seed,), n_queries=job.queries, pool_size=job.pool,
                                       n_candidates=job.candidates)
    if (job.answerer == WEB) != (web is not None):
        raise ValidationError(f"answerer={job.answerer!r}: a WebSession is needed exactly with --answerer web")
    if web is not None:
        label_active.check_web_env(job.env)
        web.start()
        answerer = label_active.WebActiveAnswerer(web.store, session=web.session, seed=job.seed + 1, url=web.url,
                                                  n_annotators=web.options.n_annotators, timeout=web.options.timeout)
        row = label_active.run_web_curve(env, job.acquisition, job.seed, config, answerer, beta=job.answer_beta)
        run = web.run
    else:
        row = active_preferences.run_curve(env, job.acquisition, job.answer_beta, job.seed, config)
        run = RunDir.create("prefs-active", out)
    run.write_json("config.json", job.to_dict())
    for q, (m, sec) in enumerate(zip(row["alignment"][1:], row["seconds"]), start=1):
        run.log(query=q, alignment=m, seconds=sec)
    w, w_star = np.asarray(row["w"]), np.asarray(env.TRUE_W)
    run.write_json("w.json", {"learned": w.tolist(), "true": w_star.tolist(), "features": list(env.FEATURE_NAMES),
                              "alignment": row["alignment"][-1], "acceptance_rate": row["acceptance_rate"]})
    active_preferences.plot([row], run.file("alignment.png"))
    files = ["config.json", "metrics.jsonl", "w.json", "alignment.png"]
    if web is not None:
        name, line = web.export()
        files.append(name)
    report = Report(f"irlhf prefs active: {job.env}, {job.acquisition}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(job.command())
    report.section("Result").text(
        f"{job.queries} queries chosen by {job.acquisition} from pairs of {job.pool} random {job.env} trajectories, "
        + (f"answered by a simulated person (logistic, beta {job.answer_beta:g}) whose reward direction the learner "
           "never sees." if web is None else "answered by people on the labelling page (alignment is with the "
           "env's built-in w*).") + f" Alignment E[w . w*] over the posterior samples after each answer; median "
        f"{1000 * np.median(row['seconds']):.1f} ms per query (selection + posterior update).").table(
        [[name, f"{a:+.3f}", f"{b:+.3f}"] for name, a, b in zip(env.FEATURE_NAMES, w, w_star)],
        header=["feature", "learned w (posterior mean direction)", "true w*"]).image(
        "alignment.png", caption="alignment against the number of queries")
    if job.env == "driving":
        controls, Phi = env.sample_pool(job.pool, seed=job.seed)
        best = int(np.argmax(Phi @ w))
        env.render_clip(env.simulate(controls[best]), run.file("best_trajectory.gif"))
        report.image("best_trajectory.gif", caption="the pool's best trajectory under the learned w (orange: the "
                     "robot car; white: the scripted human car)")
        files.append("best_trajectory.gif")
    summary = [f"irlhf prefs active -> {run.path}",
               f"{job.env}, {job.acquisition}: alignment {row['alignment'][0]:+.3f} (prior) -> "
               f"{row['alignment'][-1]:+.3f} after {job.queries} queries; learned w "
               + ", ".join(f"{name} {v:+.2f}" for name, v in zip(env.FEATURE_NAMES, w)),
               f"report: {run.file('report.html')}"]
    if web is not None:
        summary.insert(2, line + f"; {row['n_asked']} asked, {row['n_skipped']} skipped or timed out")
    report.finish(run, files + ["summary.txt", "report.html"], summary)
    return run, summary


def run_active_command(args: argparse.Namespace) -> int:
    job = ActiveJobConfig(env=args.env, acquisition=args.acquisition, queries=args.queries,
                          answer_beta=args.answer_beta, pool=args.pool, candidates=args.candidates, seed=args.seed,
                          answerer=getattr(args, "answerer", "simulated"))
    if job.answerer == WEB:
        label_active.check_web_env(job.env)  # before the server starts or anything is written
    options = web_options(args, job.answerer == WEB, "--answerer web") if hasattr(args, "db") else None
    with WebSession(options, "prefs-active", args.out) if options is not None else contextlib.nullcontext() as web:
        return print_summary(run_active(job, args.out, web=web)[1])


def reject_unused_fit_options(args: argparse.Namespace) -> None:
    """--synthetic-comparisons and --seed only shape the synthetic example; --n-items only a file's item count."""
    if args.synthetic:
        reject_options(args, ("n_items",), f"not used with --synthetic (the example has {args.synthetic} items)")
    else:
        reject_options(args, ("synthetic_comparisons", "seed"), "only used with --synthetic N_ITEMS (fitting "
                       "judgements from a file draws nothing at random)")


def run(args: argparse.Namespace) -> int:
    reject_unused_fit_options(args)
    job = FitJobConfig(comparisons=args.comparisons, rankings=args.rankings, synthetic=args.synthetic,
                       synthetic_comparisons=args.synthetic_comparisons, n_items=args.n_items, model=args.model,
                       alpha=args.alpha, seed=args.seed)
    return print_summary(run_fit(job, args.out)[2])
