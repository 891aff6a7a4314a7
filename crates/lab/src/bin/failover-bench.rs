//! `failover-bench`: failover time for routes ∈ {1, 10, 50, 100, 200, 500} and EIPs ∈ {1, 25}
//! against the in-memory cloud simulating EC2 (latency per call, a token bucket per API
//! action with EC2's documented figures: 50 / 5 per second for ReplaceRoute and
//! AssociateAddress, 100 / 20 for a filtered Describe*; the SDK client's retries of a throttled
//! call: see `failover_lab::sim`), on tokio's paused
//! clock: the times are simulated seconds, reproducible on any machine. Side by side: the
//! engine (paced), the same engine unpaced, the engine with concurrency 1, the throttle lower
//! bound, and CFE's published figures. Prints Markdown.

use failover_core::engine::declaration::Declaration;
use failover_core::engine::failover::{run, RunOutcome};
use failover_core::engine::plan::MEMBER_TAG;
use failover_core::engine::request::Mode;
use failover_core::engine::request::{RunRequest, TargetSpec};
use failover_core::lab::{
    tags, EipSpec, SubnetSpec, TableSpec, Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT,
    SEED_TAG,
};
use failover_core::memory::MemoryCloud;
use failover_lab::sim::{SimulatedCloud, Simulation};
use serde_json::json;

/// Routes per route table (a table holds at most 50 routes by default on AWS).
const ROUTES_PER_TABLE: usize = 50;

struct Case {
    routes: usize,
    eips: usize,
}

fn topology(c: &Case) -> Topology {
    let mut topo = Topology::seed();
    let tables = c.routes.div_ceil(ROUTES_PER_TABLE);
    let per = c.routes.min(ROUTES_PER_TABLE);
    topo.route_tables = (0..tables)
        .map(|t| TableSpec {
            id: format!("rtb-{:017x}", t + 1),
            tags: tags([SEED_TAG]),
            routes: (0..per)
                .map(|i| {
                    (
                        format!("172.{}.{}.0/24", 16 + i / 250, i % 250)
                            .parse()
                            .unwrap(),
                        SEED_A_EXT.to_string(),
                    )
                })
                .take(c.routes - t * per)
                .collect(),
            subnets: vec![],
        })
        .collect();
    // Interface 1 of each unit is its external ENI (seed topology); one VIP per EIP on each.
    topo.instances[0].interfaces[1].secondary = (0..c.eips)
        .map(|i| format!("10.0.0.{}", 101 + i).parse().unwrap())
        .collect();
    topo.instances[1].interfaces[1].secondary = (0..c.eips)
        .map(|i| format!("10.0.4.{}", 101 + i).parse().unwrap())
        .collect();
    topo.elastic_ips = (0..c.eips)
        .map(|i| EipSpec {
            allocation_id: format!("eipalloc-{:017x}", i + 1),
            public_ip: format!("198.51.100.{}", i + 1).parse().unwrap(),
            tags: tags([
                SEED_TAG,
                (
                    "f5_cloud_failover_vips",
                    &format!("10.0.0.{0},10.0.4.{0}", 101 + i),
                ),
            ]),
            associated_with: Some((
                SEED_A_EXT.to_string(),
                format!("10.0.0.{}", 101 + i).parse().unwrap(),
            )),
        })
        .collect();
    topo
}

/// Association-swap layout: `subnets` web subnets, each with twin tables (one per unit) of
/// `routes / subnets` routes; the subnets start on A's twins.
fn twin_topology(routes: usize, subnets: usize) -> Topology {
    let mut topo = Topology::seed();
    let per = routes / subnets;
    topo.subnets.extend((0..subnets).map(|i| SubnetSpec {
        id: format!("subnet-web-{i}"),
        cidr: format!("10.0.{}.0/24", 100 + i).parse().unwrap(),
        az: "us-east-1a".into(),
    }));
    topo.route_tables = (0..subnets)
        .flat_map(|i| {
            [(SEED_A, SEED_A_EXT), (SEED_B, SEED_B_EXT)].map(|(member, eni)| TableSpec {
                id: format!("rtb-twin{}{i:04}", if member == SEED_A { "a" } else { "b" }),
                tags: tags([SEED_TAG, (MEMBER_TAG, member)]),
                routes: (0..per)
                    .map(|r| {
                        (
                            format!("172.{}.{}.0/24", 16 + r / 250, r % 250)
                                .parse()
                                .unwrap(),
                            eni.to_string(),
                        )
                    })
                    .collect(),
                subnets: if member == SEED_A {
                    vec![format!("subnet-web-{i}")]
                } else {
                    vec![]
                },
            })
        })
        .collect();
    topo
}

async fn measure_swap(routes: usize, subnets: usize) -> Measured {
    let decl = with_ranges(routes / subnets, json!({"associationSwap": true}));
    measure_on(&twin_topology(routes, subnets), &decl, subnets + 1).await
}

/// A declaration managing `per_table` ranges in every tagged table, with this extension block.
fn with_ranges(per_table: usize, serverless: serde_json::Value) -> Declaration {
    let ranges: Vec<_> = (0..per_table)
        .map(|i| json!({"range": format!("172.{}.{}.0/24", 16 + i / 250, i % 250)}))
        .collect();
    let v = json!({
        "class": "Cloud_Failover",
        "environment": "aws",
        "externalStorage": {"scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverAddresses": {"enabled": true, "scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverRoutes": {
            "enabled": true,
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": ranges,
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        },
        "serverless": serverless
    });
    Declaration::from_value(&v).expect("bench declaration")
}

struct Measured {
    seconds: f64,
    ec2_calls: usize,
    ec2_rounds: usize,
    throttled: usize,
    ok: bool,
}

async fn measure(c: &Case, concurrency: usize, rate: u64, burst: u64) -> Measured {
    let ext = json!({"maxConcurrency": concurrency, "mutationRate": rate, "mutationBurst": burst});
    let decl = with_ranges(c.routes.min(ROUTES_PER_TABLE), ext);
    measure_on(&topology(c), &decl, c.routes + c.eips).await
}

/// One failover A → B on a simulated EC2 holding `topo`, timed on tokio's paused clock.
async fn measure_on(topo: &Topology, decl: &Declaration, operations: usize) -> Measured {
    let cloud = SimulatedCloud::new(MemoryCloud::from_topology(topo), Simulation::default());
    let mut req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "bench");
    req.force = true;
    let t0 = tokio::time::Instant::now();
    let out = run(&cloud.ec2(), &cloud, decl, req).await;
    let seconds = t0.elapsed().as_secs_f64();
    let ok = matches!(&out, Ok(RunOutcome::Completed(r)) if r.record.outcomes.iter().all(|o| o.verified)
        && r.record.outcomes.len() == operations);
    Measured {
        seconds,
        ec2_calls: cloud.ec2_calls(),
        ec2_rounds: cloud.ec2_rounds(),
        throttled: cloud.throttled_count(),
        ok,
    }
}

/// CFE's published AWS figures (performance-sizing): routes, then EIPs.
fn cfe_route_seconds(routes: usize) -> Option<f64> {
    match routes {
        r if r <= 100 => Some(5.0),
        200 => Some(15.0),
        500 => Some(90.0),
        _ => None,
    }
}

/// The same, as the table shows it: a figure F5 measured for this row as printed; one read
/// across from a neighbouring size marked `*`. F5 measured (performance-sizing, AWS): no EIP
/// with 50, 100, 200 and 500 routes; 25 EIPs with 0, 25, 50 and 100 routes.
fn cfe(c: &Case) -> String {
    let measured = match c.eips {
        25 => matches!(c.routes, 50 | 100),
        _ => false,
    };
    let figure = match (cfe_route_seconds(c.routes), c.eips) {
        (_, 25) if c.routes <= 10 => "5 s (25 EIPs)".to_string(),
        (Some(s), _) => format!("{s} s"),
        (None, _) => return "–".into(),
    };
    if measured {
        figure
    } else {
        format!("{figure}*")
    }
}

impl Measured {
    /// The time as a table cell, marked when some operation did not complete.
    fn shown(&self) -> String {
        if self.ok {
            format!("{:.2} s", self.seconds)
        } else {
            format!("{:.2} s (incomplete)", self.seconds)
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    if std::env::args().nth(1).as_deref() == Some("outage") {
        // Only the AZ-outage table (and its plot, when a path follows).
        return outage(&rt, std::env::args().nth(2).as_deref());
    }
    let sim = Simulation::default();
    let (burst, rate) = sim.mutating_bucket;
    println!("| routes | EIPs | engine (paced) | engine unpaced | concurrency 1 | throttle bound | CFE published | EC2 calls / rounds (paced) | throttled: paced / unpaced |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut series: Vec<Point> = Vec::new();
    for eips in [1usize, 25] {
        for routes in [1usize, 10, 50, 100, 200, 500] {
            let c = Case { routes, eips };
            let (paced, unpaced, sequential) = rt.block_on(async {
                (
                    measure(&c, 64, rate as u64, burst as u64).await,
                    measure(&c, 64, 1000, 1000).await,
                    measure(&c, 1, rate as u64, burst as u64).await,
                )
            });
            // Routes and EIPs use separate buckets (one per API action).
            let bound = |n: usize| (n as f64 - burst).max(0.0) / rate;
            let lower = bound(routes).max(bound(eips));
            if eips == 1 {
                let cfe_s = cfe_route_seconds(routes).expect("published for every bench size");
                series.push((routes, paced.seconds, sequential.seconds, lower, cfe_s));
            }
            println!(
                "| {routes} | {eips} | {} | {} | {} | {:.1} s | {} | {} / {} | {} / {} |",
                paced.shown(),
                unpaced.shown(),
                sequential.shown(),
                lower,
                cfe(&c),
                paced.ec2_calls,
                paced.ec2_rounds,
                paced.throttled,
                unpaced.throttled
            );
        }
    }
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, plot(&series)).expect("write the plot");
    }
    println!();
    println!("Association-swap mode (`serverless.associationSwap`): twin route tables per subnet, one per unit; a failover moves each subnet's association (ReplaceRouteTableAssociation), whatever the number of routes.");
    println!();
    println!("| routes | subnets | twin tables | engine (paced) | EC2 calls / rounds | throttled | per-route mode, same routes |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (routes, subnets) in [(50usize, 1usize), (500, 10)] {
        let (swap, per_route) = rt.block_on(async {
            (
                measure_swap(routes, subnets).await,
                measure(&Case { routes, eips: 1 }, 64, rate as u64, burst as u64).await,
            )
        });
        println!(
            "| {routes} | {subnets} | {} | {} | {} / {} | {} | {} |",
            subnets * 2,
            swap.shown(),
            swap.ec2_calls,
            swap.ec2_rounds,
            swap.throttled,
            per_route.shown()
        );
    }
    let outage_plot = std::env::args()
        .nth(1)
        .map(|p| std::path::Path::new(&p).with_file_name("az-outage.svg"));
    outage(&rt, outage_plot.as_ref().and_then(|p| p.to_str()));
}

/// The AZ outage: every cluster of a fleet failing over at once in one account.
fn outage(rt: &tokio::runtime::Runtime, plot_to: Option<&str>) {
    use failover_lab::outage::{az_outage, fleet_outage, Mode, OutageReport};
    println!();
    println!("AZ outage: every pair's active unit fails at once and every cluster's failover runs at once in one account, sharing its EC2 buckets; before the fleet: independent runs, each pacing as if it had the account to itself; the fleet: one executor for the account (handle_fleet, as the SQS-fed Lambda of concurrency 1 runs it, every alarm in one batch).");
    println!();
    println!("| how | clusters | EIPs + routes each | operations | data path (every EIP and default route on the standby) | all runs done | throttle bound | throttled calls | failed operations | failed runs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let show = |r: &OutageReport, how: &str, each: &str| {
        println!(
            "| {how} | {} | {each} | {} | {} | {:.2} s | {:.1} s | {} | {} | {} |",
            r.clusters,
            r.operations,
            match r.data_path_s {
                Some(s) => format!("{s:.2} s"),
                None => format!("never, for {} cluster(s)", r.data_path_missing),
            },
            r.all_done_s,
            r.bound_s,
            r.throttled,
            r.failed_operations,
            r.failed_runs
        );
    };
    let alone = rt.block_on(az_outage(50, 2, 5, Simulation::default()));
    show(
        &alone,
        "before the fleet: independent runs",
        "1 + 10 (2 tables)",
    );
    let executor = |mode, clusters, tables, routes| {
        rt.block_on(fleet_outage(
            mode,
            clusters,
            tables,
            routes,
            Simulation::default(),
        ))
    };
    let warm = executor(Mode::OneExecutor, 50, 2, 5);
    let cold = executor(Mode::OneExecutorCold, 50, 2, 5);
    show(
        &warm,
        "fleet: one executor (index warm)",
        "1 + 10 (2 tables)",
    );
    show(
        &cold,
        "fleet: one executor (cold: index built first)",
        "1 + 10 (2 tables)",
    );
    show(
        &rt.block_on(az_outage(1, 10, 50, Simulation::default())),
        "one cluster, its own run",
        "1 + 500 (10 tables)",
    );
    if let Some(path) = plot_to {
        let lines = [
            ("independent runs", "#c22", &alone),
            ("one executor, index warm", "#2a6", &warm),
            ("one executor, cold", "#26c", &cold),
        ];
        std::fs::write(path, outage_plot(&lines)).expect("write the plot");
    }
    show(
        &executor(Mode::OneExecutor, 1, 10, 50),
        "one cluster, fleet executor (index warm)",
        "1 + 500 (10 tables)",
    );
    println!();
    println!("Fleet cold start: the executor's first event after it started (no index), one pair's alarm, fleets of every size; the event is routed by the instance it names (one DescribeInstances, then the clusters whose scoping tags its interfaces carry) before the rest of the fleet is discovered.");
    println!();
    println!("| declarations | alarm answered | status | EC2 calls |");
    println!("|---:|---:|---|---:|");
    for n in [10, 100, 300, 1000] {
        let c = rt.block_on(failover_lab::outage::fleet_cold_start(
            n,
            Simulation::default(),
        ));
        println!(
            "| {} | {:.2} s | {} | {} |",
            c.clusters, c.answered_s, c.status, c.ec2_calls
        );
    }
}

/// The AZ-outage plot: how many clusters' data path (EIP and default routes) follows the
/// standby, over simulated time, for each way of running the fleet's failovers.
fn outage_plot(lines: &[(&str, &str, &failover_lab::outage::OutageReport)]) -> String {
    let (w, h, pad) = (760.0, 380.0, 60.0);
    let clusters = lines.iter().map(|l| l.2.clusters).max().unwrap_or(1) as f64;
    let tmax = lines
        .iter()
        .flat_map(|l| l.2.data_path_at.iter().flatten())
        .fold(1.0f64, |a, b| a.max(*b))
        .ceil()
        * 1.1;
    let x = |t: f64| pad + t / tmax * (w - 2.0 * pad);
    let y = |n: f64| h - pad - n / clusters * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{pad}\" y=\"24\">AZ outage, {clusters} clusters in one account: clusters whose EIP and default routes follow the standby</text>\n"
    );
    svg += &format!("<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"black\"/>\n", h - pad, w - pad);
    for t in [0.0, tmax / 4.0, tmax / 2.0, 3.0 * tmax / 4.0] {
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{t:.0} s</text>\n",
            x(t),
            h - pad + 18.0
        );
    }
    for n in [0.0, clusters / 2.0, clusters] {
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{n:.0}</text>\n",
            pad - 6.0,
            y(n) + 4.0
        );
    }
    for (i, (name, color, r)) in lines.iter().enumerate() {
        let mut times: Vec<f64> = r.data_path_at.iter().flatten().copied().collect();
        times.sort_by(f64::total_cmp);
        let mut pts = vec![format!("{:.1},{:.1}", x(0.0), y(0.0))];
        for (k, t) in times.iter().enumerate() {
            pts.push(format!("{:.1},{:.1}", x(*t), y(k as f64)));
            pts.push(format!("{:.1},{:.1}", x(*t), y(k as f64 + 1.0)));
        }
        pts.push(format!("{:.1},{:.1}", x(tmax), y(times.len() as f64)));
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        let never = r.data_path_missing;
        let label = if never > 0 {
            format!("{name} ({never} never)")
        } else {
            name.to_string()
        };
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"{color}\">{label}</text>\n",
            w - pad - 230.0,
            h - pad - 40.0 - 16.0 * i as f64
        );
    }
    svg += "</svg>\n";
    svg
}

/// One routes count: (routes, paced s, concurrency-1 s, throttle bound s, CFE published s).
type Point = (usize, f64, f64, f64, f64);
/// A plotted series: name, colour, value of a point.
type Line = (&'static str, &'static str, fn(&Point) -> f64);

/// An SVG line chart: failover time against routes (1 EIP), log-scaled routes axis.
fn plot(series: &[Point]) -> String {
    let (w, h, pad) = (760.0, 380.0, 60.0);
    let ymax = series
        .iter()
        .map(|p| p.1.max(p.2).max(p.3).max(p.4))
        .fold(1.0, f64::max)
        * 1.1;
    let x = |r: usize| pad + ((r as f64).ln() / 500f64.ln()) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / ymax * (h - 2.0 * pad);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{pad}\" y=\"24\">Failover time vs routes (1 EIP), simulated EC2 with default throttling</text>\n"
    );
    svg += &format!("<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"black\"/>\n", h - pad, w - pad);
    for p in series {
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>\n",
            x(p.0),
            h - pad + 18.0,
            p.0
        );
    }
    for v in [0.0, ymax / 2.0, ymax] {
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{v:.0} s</text>\n",
            pad - 6.0,
            y(v) + 4.0
        );
    }
    svg += &format!(
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">routes (log scale)</text>\n",
        w / 2.0,
        h - 12.0
    );
    let lines: [Line; 4] = [
        ("engine (paced)", "#2a6", |p| p.1),
        ("concurrency 1", "#c80", |p| p.2),
        ("throttle bound", "#888", |p| p.3),
        ("CFE published", "#c22", |p| p.4),
    ];
    for (i, (name, color, get)) in lines.iter().enumerate() {
        let pts: Vec<String> = series
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(get(p))))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        svg += &format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"{color}\">{name}</text>\n",
            pad + 10.0,
            pad + 16.0 * i as f64
        );
    }
    svg += "</svg>\n";
    svg
}
