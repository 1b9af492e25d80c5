"""The route step of ``irlhf demo``: Ziebart et al.'s route-preference MaxEnt IRL on a generated city (no OSM extra
needed; ``irlhf routes`` runs the same on a real map)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from irlhf.envs.road_maps import generated_city
from irlhf.envs.roads import RoadNetwork
from irlhf.eval.routes import cost_correlation, route_metrics
from irlhf.irl import routes as route_irl
from irlhf.irl.route_baselines import shortest_route
from irlhf.jobs.demo._shared import Demo
from irlhf.planning.route_drivers import synthetic_routes
from irlhf.planning.routes import RouteBatch, RouteModel
from irlhf.report.route_map import cost_per_km, route_map

ROUTE_CITY = 14  # blocks per side of the generated city
ROUTE_TRAIN, ROUTE_TEST = 150, 50  # a synthetic commuter's routes


def predict_routes(demo: Demo) -> dict[str, Any]:
    c = demo.config
    net = RoadNetwork.from_edges(**generated_city(ROUTE_CITY, ROUTE_CITY, seed=c.seed))
    batch, _, theta_true = synthetic_routes(net, ROUTE_TRAIN + ROUTE_TEST, driver="commuter", seed=c.seed)
    routes = [batch.route(i) for i in range(len(batch))]
    train, test = routes[:ROUTE_TRAIN], routes[ROUTE_TRAIN:]
    t0 = time.perf_counter()
    result = route_irl.train(net, train, route_irl.Config(progress=demo.progress))
    seconds = time.perf_counter() - t0
    model, test_b = RouteModel(net, result.theta), RouteBatch.from_routes(net, test)
    od = list(zip(test_b.origins.tolist(), test_b.destinations.tolist()))
    maxent_pred = [model.best_route(o, d) for o, d in od]
    fastest = [shortest_route(net, o, d, by="time") for o, d in od]
    m_me = route_metrics(net, maxent_pred, test, log_probs=model.log_prob(test_b))
    m_st = route_metrics(net, fastest, test)
    i = int(np.argmax([len(r) for r in test]))
    demo.run.save_figure("routes_map.png", route_map(
        net, cost_per_km(net, result.theta), [test[i], maxent_pred[i], fastest[i]],
        ["held-out route", "MaxEnt most likely", "shortest time"], title="generated city: learned cost per km"))
    metrics = {"routes_states": net.n_states, "routes_maxent_exact": m_me["exact_match"],
               "routes_maxent_matched_90": m_me["matched_90"], "routes_maxent_log_prob": m_me["mean_log_prob"],
               "routes_shortest_time_exact": m_st["exact_match"], "routes_shortest_time_matched_90": m_st["matched_90"],
               "routes_cost_correlation": cost_correlation(net, result.theta, theta_true), "routes_seconds": seconds}
    demo.report.section("Route preferences").text(
        f"Ziebart et al.'s route model on a generated {ROUTE_CITY} x {ROUTE_CITY}-block city ({net.n_states} road "
        f"segments as states, {net.n_transitions} turns as actions): MaxEnt IRL learns road-class, time, lane and "
        f"turn costs from {ROUTE_TRAIN} routes of a synthetic commuter and predicts {ROUTE_TEST} held-out ones "
        f"(`irlhf routes` does the same on an OpenStreetMap file; docs/routes.md)."
    ).table([["MaxEnt IRL", m_me["exact_match"], m_me["matched_90"], m_me["mean_log_prob"]],
             ["shortest time", m_st["exact_match"], m_st["matched_90"], "n/a"]],
            header=["model", "% exact route", "% >= 90% distance matched", "mean log-probability"]).image(
        "routes_map.png", caption="Streets coloured by learned cost per km; a held-out route and the predictions.")
    demo.summary.append(f"routes: MaxEnt {m_me['matched_90']:.0f}% of held-out routes >= 90% matched (shortest time "
                        f"{m_st['matched_90']:.0f}%); correlation with the driver's true turn costs "
                        f"{metrics['routes_cost_correlation']:.3f}")
    return metrics
