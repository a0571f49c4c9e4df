//! `cargo xtask report`: an HTML page with SVG plots of the consistency strategies, the
//! adapter's cost, a fault timeline, the fleet's cost and the web path, from runs made for it.
//!
//! Data: `cargo run --example fault_timeline` (a PostgreSQL cluster through a replica kill, a
//! replica frozen with SIGSTOP and thawed, a lag spike and a switchover, sampled every 250 ms;
//! per sample the readers' p99 and slowest read, the reads hedged or steered off a stalled
//! replica, failed reads by the reader's consistency level, failed writes, and the samples in
//! which no node could prove the bounded readers' bound), the consistency benchmark (with
//! `RWSPLIT_BENCH_JSON`), the fleet and web benchmarks (their `--json`), and the callgrind
//! counts of `bench adapter-instructions` (needs valgrind). The benchmarks are built by one
//! cargo call (`bench::REPORT_BENCHES`) and their executables run directly. Plots are drawn
//! with `plotters`' SVG backend and written inline into one page,
//! `target/rwsplit/report/index.html`, beside the JSON they came from.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Where to write the page and its data (default `target/rwsplit/report`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Plot the data already in the output directory instead of running anything.
    #[arg(long)]
    reuse: bool,
    /// Fail when a measured figure breaks its budget (the adapter's instructions and timers
    /// per read), after writing the page.
    #[arg(long)]
    enforce_budgets: bool,
}

impl ReportArgs {
    /// What `cargo xtask ci` runs: everything, into the default directory, budgets enforced.
    pub(crate) fn for_ci() -> ReportArgs {
        ReportArgs { out: None, reuse: false, enforce_budgets: true }
    }
}

const W: u32 = 900;
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| crate::state_dir().join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let timeline_json = out.join("timeline.json");
    let consistency_json = out.join("consistency.json");
    let adapter_json = out.join("adapter.json");
    let fleet_json = out.join("fleet.json");
    let web_json = out.join("web.json");
    let measured_json = out.join("measured.json");
    if !args.reuse {
        // What the runs below measure, stamped before they start: the page names it.
        std::fs::write(&measured_json, measured_now().to_string())?;
        // Each run's time, printed as it ends: the report is the CI's longest phase.
        let mut last = std::time::Instant::now();
        let mut took = |what: &str| {
            eprintln!("report: {:>5.0} s  {what}", last.elapsed().as_secs_f64());
            last = std::time::Instant::now();
        };
        let mut timeline = crate::cargo_at_root();
        timeline.args(["run", "--quiet", "--example", "fault_timeline", "--"]).arg(&timeline_json);
        crate::run(&mut timeline)?;
        took("the fault timeline");
        // The benchmarks are built together, once (`bench::REPORT_BENCHES`), and run directly.
        crate::bench::run_report_bench(
            "rwsplit-sea-orm",
            "consistency",
            &[],
            &[("RWSPLIT_BENCH_JSON", &consistency_json)],
        )?;
        took("the benchmarks' build and the consistency benchmark");
        let cost = crate::bench::measure_adapter_instructions(None)?;
        took("a read's instructions");
        let write = crate::bench::measure_write_instructions(None)?;
        took("a write's instructions");
        let doc = serde_json::json!({
            "plain": cost.plain,
            "routed": cost.routed,
            "plain_timers": cost.plain_timers,
            "routed_timers": cost.routed_timers,
            "spread": cost.spread,
            "budget": crate::bench::ADDED_INSTRUCTIONS_BUDGET,
            "write": {
                "plain": write.plain,
                "routed": write.routed,
                "spread": write.spread,
                "budget": crate::bench::ADDED_WRITE_INSTRUCTIONS_BUDGET,
            },
        });
        std::fs::write(&adapter_json, doc.to_string())?;
        // The fleet: one instance, 10 processes and 10 connections in one process, in
        // containers. (200 processes on a 2-core machine carry about half the workload's
        // default pace, and a few probes time out: `cargo xtask bench fleet -- --ks 200`.)
        let fleet_args = ["--ks", "1,10", "--window-secs", "5", "--json"];
        let mut args: Vec<std::ffi::OsString> = fleet_args.iter().map(Into::into).collect();
        args.push(fleet_json.clone().into());
        crate::bench::run_report_bench("rwsplit-sea-orm", "fleet", &args, &[])?;
        took("the fleet");
        // The web path end to end (an axum app over plain SeaORM, `RoutedConnection`
        // and `SessionLayer`), PostgreSQL and MariaDB, natural lag and late replicas.
        let args: Vec<std::ffi::OsString> = vec![
            "--requests".into(),
            WEB_REQUESTS.to_string().into(),
            "--json".into(),
            web_json.clone().into(),
        ];
        crate::bench::run_report_bench("rwsplit-axum", "web", &args, &[])?;
        took("the web path");
    }
    let read = |p: &Path| -> anyhow::Result<Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let timeline = read(&timeline_json)?;
    let consistency = read(&consistency_json)?;
    let adapter = read(&adapter_json)?;
    let fleet = read(&fleet_json)?;
    let web = read(&web_json)?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>rwsplit report</title>\
         <style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
         th:first-child,td:first-child{text-align:left}</style></head><body><h1>rwsplit report</h1>",
    );
    // Runs of an older xtask wrote no stamp: the page says so rather than guess.
    let measured = read(&measured_json).unwrap_or(Value::Null);
    stamp_section(&mut html, &measured);
    consistency_section(&mut html, &consistency)?;
    adapter_section(&mut html, &adapter)?;
    timeline_section(&mut html, &timeline)?;
    fleet_section(&mut html, &fleet);
    web_section(&mut html, &web);
    html.push_str("</body></html>\n");
    let mut over = budget_failures(&adapter);
    over.extend(monotonic_failures(&consistency));
    over.extend(ryw_failures(&consistency));
    over.extend(switchover_failures(&timeline));
    over.extend(freeze_failures(&timeline));
    over.extend(fleet_failures(&fleet));
    over.extend(web_failures(&web));
    let page = out.join("index.html");
    std::fs::write(&page, html).with_context(|| format!("writing {}", page.display()))?;
    println!("{}", page.display());
    for o in &over {
        eprintln!("report: over budget: {o}");
    }
    anyhow::ensure!(
        !args.enforce_budgets || over.is_empty(),
        "{} budget(s) broken: {}",
        over.len(),
        over.join("; ")
    );
    Ok(())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// An SVG of `w`×`h` drawn by `draw`, as a string.
fn svg(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(s)
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}

fn consistency_section(html: &mut String, doc: &Value) -> anyhow::Result<()> {
    let rows = doc["rows"].as_array().context("consistency rows")?;
    let _ = write!(
        html,
        "<h2>Read-your-writes strategies</h2><p>PostgreSQL primary and 2 replicas applying WAL {} ms \
         late; {} users × {} rounds. Each strategy: the share of reads served by replicas \
         against stale reads of one's own writes; the grey line is the oracle share (what a \
         router with perfect, instant knowledge of replica positions could send to replicas \
         without a stale read).</p>",
        num(&doc["delay_ms"]),
        num(&doc["users"]),
        num(&doc["rounds"])
    );
    let oracle = rows.iter().map(|r| num(&r["oracle_share"])).fold(0.0, f64::max) * 100.0;
    let max_stale = rows.iter().map(|r| num(&r["stale"])).fold(1.0, f64::max);
    let chart = svg(W, 420, |root| {
        let mut c = ChartBuilder::on(root)
            .caption("stale reads vs share of reads on replicas", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-5.0..105.0, -5.0..(max_stale * 1.15))
            .map_err(plot_err)?;
        c.configure_mesh()
            .x_desc("reads on replicas (%)")
            .y_desc("stale reads")
            .draw()
            .map_err(plot_err)?;
        c.draw_series(LineSeries::new(
            [(oracle, -5.0), (oracle, max_stale * 1.15)],
            ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(2),
        ))
        .map_err(plot_err)?;
        for (i, r) in rows.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let point = (num(&r["replica_share"]) * 100.0, num(&r["stale"]));
            let name = r["strategy"].as_str().unwrap_or("?").to_owned();
            c.draw_series(std::iter::once(Circle::new(point, 7, color.filled())))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })?;
    html.push_str(&chart);
    html.push_str(
        "<table><tr><th>strategy</th><th>stale</th><th>on replicas</th><th>of the oracle</th>\
         <th>read p50</th><th>read p99</th><th>write p50</th></tr>",
    );
    for r in rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{} of {}</td><td>{:.1} %</td><td>{:.0} %</td><td>{:.2} ms</td>\
             <td>{:.2} ms</td><td>{:.2} ms</td></tr>",
            r["strategy"].as_str().unwrap_or("?"),
            num(&r["stale"]),
            num(&r["own_reads"]),
            num(&r["replica_share"]) * 100.0,
            100.0 * num(&r["replica_share"]) / num(&r["oracle_share"]).max(f64::MIN_POSITIVE),
            num(&r["read_p50_ms"]),
            num(&r["read_p99_ms"]),
            num(&r["write_p50_ms"]),
        );
    }
    html.push_str("</table>");
    monotonic_section(html, doc);
    Ok(())
}

/// The monotonic-reads workload's row at `level` (`eventual`, `session`).
fn monotonic_row<'a>(doc: &'a Value, level: &str) -> Option<&'a Value> {
    doc["monotonic"].as_array()?.iter().find(|r| r["level"].as_str() == Some(level))
}

/// The monotonic-reads budgets, in words, for those broken: at `session` no read
/// goes back in time, and replicas serve at least 90 % of what they serve
/// at `eventual` (which goes back in time freely).
fn monotonic_failures(doc: &Value) -> Vec<String> {
    let (Some(session), Some(eventual)) =
        (monotonic_row(doc, "session"), monotonic_row(doc, "eventual"))
    else {
        return vec!["the consistency benchmark has no monotonic-reads rows".to_owned()];
    };
    let mut over = Vec::new();
    let back = num(&session["time_travel"]);
    if back > 0.0 {
        over.push(format!("{back} session reads went back in time (budget 0)"));
    }
    let (s, e) = (num(&session["replica_share"]), num(&eventual["replica_share"]));
    if s < 0.9 * e {
        over.push(format!(
            "session reads on replicas {:.1} % < 90 % of eventual's {:.1} %",
            100.0 * s,
            100.0 * e
        ));
    }
    over
}

fn monotonic_section(html: &mut String, doc: &Value) {
    let Some(rows) = doc["monotonic"].as_array() else { return };
    html.push_str(
        "<h2>Monotonic reads</h2><p>One replica applies at once, the other late; a writer \
         increments a counter every 10 ms; readers that only read it count the reads that \
         returned a value below one they had already seen. Budgets: 0 at <code>session</code> \
         (monotonic reads), and replicas serving at least 90 % of what they serve at \
         <code>eventual</code>.</p><table><tr><th>level</th><th>reads</th>\
         <th>went back in time</th><th>worst step back</th><th>on replicas</th></tr>",
    );
    for r in rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
            r["level"].as_str().unwrap_or("?"),
            num(&r["reads"]),
            num(&r["time_travel"]),
            num(&r["worst"]),
            num(&r["replica_share"]) * 100.0,
        );
    }
    html.push_str("</table>");
}

/// The least share of the oracle's reads that read-your-writes by position must serve from
/// replicas (the position feed runs on demand; the target is 99 %, and the budget leaves one
/// read in a hundred more to the run's timing).
const RYW_OF_ORACLE: f64 = 0.98;

/// The read-your-writes budgets, in words, for those broken: `rwsplit by position` serves no
/// stale read and at least [`RYW_OF_ORACLE`] of what the oracle could from replicas.
fn ryw_failures(doc: &Value) -> Vec<String> {
    let Some(row) = doc["rows"].as_array().and_then(|rows| {
        rows.iter().find(|r| r["strategy"].as_str() == Some("rwsplit by position"))
    }) else {
        return vec!["the consistency benchmark has no `rwsplit by position` row".to_owned()];
    };
    let mut over = Vec::new();
    let stale = num(&row["stale"]);
    if stale > 0.0 {
        over.push(format!("{stale} stale read-your-writes reads by position (budget 0)"));
    }
    let (share, oracle) = (num(&row["replica_share"]), num(&row["oracle_share"]));
    if oracle > 0.0 && share < RYW_OF_ORACLE * oracle {
        over.push(format!(
            "read-your-writes by position served {:.1} % from replicas, {:.0} % of the oracle's {:.1} % (budget {:.0} %)",
            100.0 * share,
            100.0 * share / oracle,
            100.0 * oracle,
            100.0 * RYW_OF_ORACLE
        ));
    }
    over
}

/// The most monitor statements per second an idle instance may cost each node: idle, the monitor
/// probes at the default idle interval (2 s, plus up to 50 ms of jitter), one statement per probe,
/// 0.5/s; the position feed runs only while reads want it.
const IDLE_STATEMENTS_PER_INSTANCE: f64 = 1.0;

/// The fleet budgets, in words, for those broken: idle, each node pays at most
/// [`IDLE_STATEMENTS_PER_INSTANCE`] per instance (processes), and one process's K connections
/// cost what one costs (one monitor, one monitor connection per node); in every row, no false
/// change of a node's role or health, no failed probe, no stale read, no failed instance.
fn fleet_failures(doc: &Value) -> Vec<String> {
    let Some(rows) = doc.as_array().filter(|r| !r.is_empty()) else {
        return vec!["the fleet benchmark has no rows".to_owned()];
    };
    let mut over = Vec::new();
    for r in rows {
        let (shape, k, workload) = (
            r["shape"].as_str().unwrap_or("?"),
            num(&r["k"]),
            r["workload"].as_str().unwrap_or("?"),
        );
        let label = format!("{shape} K={k} {workload}");
        for (what, field) in [
            ("false role/health changes", "false_changes"),
            ("failed probes", "failed_probes"),
            ("stale reads", "stale"),
            ("failed instances", "failed_instances"),
        ] {
            let n = num(&r[field]);
            if n > 0.0 {
                over.push(format!("{label}: {n} {what} (budget 0)"));
            }
        }
        let nodes = r["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
        if workload != "idle" {
            continue;
        }
        for n in nodes {
            let node = n["node"].as_str().unwrap_or("?");
            let per_s = num(&n["monitor_per_s"]);
            let instances = if shape == "processes" { k.max(1.0) } else { 1.0 };
            if per_s / instances > IDLE_STATEMENTS_PER_INSTANCE {
                over.push(format!(
                    "{label}: {node} answers {:.2} monitor statements/s per instance (budget {IDLE_STATEMENTS_PER_INSTANCE})",
                    per_s / instances
                ));
            }
            if shape == "one_process" && num(&n["monitor_connections"]) > 1.0 {
                over.push(format!(
                    "{label}: {node} has {} monitor connections for one process (budget 1: one shared monitor)",
                    num(&n["monitor_connections"])
                ));
            }
        }
    }
    over
}

/// Requests per variant and workload in the report's web run (the bench's default is 4,000).
const WEB_REQUESTS: u32 = 2_000;

/// The web path's budgets, on deterministic counts: at the replicas' natural lag,
/// read-only through the layer at most 0.005 primary statements per request and a `Set-Cookie`
/// on at most 1 % of responses; 1 write : 9 reads through the layer at most 0.30 primary
/// statements per request and at least 80 % of reads on replicas; in every case no stale or
/// time-travel read through the router, at most two round trips on the primary per write
/// request through the router (the write and its position read), and no error anywhere; with
/// the replicas late, no position read per write request through the layer that no read
/// could use ([`LATE_POSITIONS_PER_WRITE`]) and no more primary statements per request than
/// plain SeaORM's in the same run (the monitor's reads, [`MONITOR_READS_PER_SECOND`], aside).
/// (Latency ratios are printed beside them, never gated: wall time on a shared machine.)
/// What the monitor's probes of the primary add per request in the web benchmark's runs, at
/// most (they count among the primary's statements there, and plain SeaORM has none), where
/// the row's own rate allows no more ([`MONITOR_READS_PER_SECOND`]).
const PROBES_PER_REQUEST: f64 = 0.01;

/// The monitor's reads of the primary per second, at most, while reads there keep asking for
/// its next position sample (a read-your-writes scope's floor): its position feed reads a node
/// at most once per quarter position interval (5 ms by default; once per interval while only
/// floors are wanted, but another want in between brings the quarter back), plus its full
/// probes: the feed's ceiling, not a measured figure. They come per second, not per request:
/// a row's allowance is this over its requests per second, at least
/// [`PROBES_PER_REQUEST`]. What a request itself costs the primary is gated apart,
/// deterministically: [`LATE_POSITIONS_PER_WRITE`].
const MONITOR_READS_PER_SECOND: f64 = 200.0;

/// Position reads per write request through the layer with the replicas late, at most: no
/// read could use them (the router's own count, deterministic).
const LATE_POSITIONS_PER_WRITE: f64 = 0.05;

fn web_failures(doc: &Value) -> Vec<String> {
    let Some(rows) = doc["rows"].as_array().filter(|r| !r.is_empty()) else {
        return vec!["the web benchmark has no rows".to_owned()];
    };
    let mut over = Vec::new();
    for db in ["postgres", "mariadb"] {
        if !rows.iter().any(|r| r["db"] == db) {
            over.push(format!("the web benchmark has no {db} rows"));
        }
    }
    for r in rows {
        let text = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
        let (variant, workload) = (text("variant"), text("workload"));
        let label = format!("web {} {} {workload} {variant}", text("db"), text("lag"));
        if num(&r["errors"]) > 0.0 {
            over.push(format!("{label}: {} errors (budget 0)", num(&r["errors"])));
        }
        if variant == "plain" {
            continue;
        }
        for (what, field) in [("stale reads", "stale"), ("time-travel reads", "time_travel")] {
            if num(&r[field]) > 0.0 {
                over.push(format!("{label}: {} {what} (budget 0)", num(&r[field])));
            }
        }
        // A write request's round trips on the primary, at any lag: the write and at most
        // one position read (the price of read-your-writes across requests).
        let trips = &r["write_round_trips"];
        if trips.is_number() && num(trips) > 2.0 {
            over.push(format!(
                "{label}: {:.3} round trips on the primary per write request (budget 2)",
                num(trips)
            ));
        }
        if r["late"] == true && variant == "routed+layer" {
            let plain = rows.iter().find(|p| {
                p["variant"] == "plain" && ["db", "lag", "workload"].iter().all(|k| p[*k] == r[*k])
            });
            let statements = num(&r["primary_statements_per_request"]);
            let rate = &r["req_per_s"];
            let probes = if rate.is_number() && num(rate) > 0.0 {
                PROBES_PER_REQUEST.max(MONITOR_READS_PER_SECOND / num(rate))
            } else {
                PROBES_PER_REQUEST
            };
            if let Some(plain) = plain.map(|p| num(&p["primary_statements_per_request"]))
                && statements > plain + probes
            {
                over.push(format!(
                    "{label}: {statements:.3} primary statements per request, plain {plain:.3} \
                     (budget: plain's + the monitor's {probes:.4})"
                ));
            }
            let positions = &r["positions_per_write"];
            if positions.is_number() && num(positions) > LATE_POSITIONS_PER_WRITE {
                over.push(format!(
                    "{label}: {:.3} position reads per write request with the replicas late \
                     (budget {LATE_POSITIONS_PER_WRITE})",
                    num(positions)
                ));
            }
        }
        if r["late"] == true || variant != "routed+layer" {
            continue;
        }
        let statements = num(&r["primary_statements_per_request"]);
        let (most, least_on_replicas, most_cookies) =
            if workload == "read-only" { (0.005, 0.0, 0.01) } else { (0.30, 0.80, 1.0) };
        if statements > most {
            over.push(format!(
                "{label}: {statements:.3} primary statements per request (budget {most})"
            ));
        }
        if num(&r["replica_share"]) < least_on_replicas {
            over.push(format!(
                "{label}: {:.1} % of reads on replicas (budget ≥ {:.0} %)",
                100.0 * num(&r["replica_share"]),
                100.0 * least_on_replicas
            ));
        }
        if num(&r["set_cookie_share"]) > most_cookies {
            over.push(format!(
                "{label}: Set-Cookie on {:.1} % of responses (budget {:.0} %)",
                100.0 * num(&r["set_cookie_share"]),
                100.0 * most_cookies
            ));
        }
    }
    over
}

fn web_section(html: &mut String, doc: &Value) {
    let Some(rows) = doc["rows"].as_array() else { return };
    let _ = write!(
        html,
        "<h2>The web path (issue 45)</h2><p>An axum app (<code>GET /items/{{id}}</code>: one \
         primary-key read; <code>POST /items</code>: one insert) over plain SeaORM on the \
         primary, over <code>RoutedConnection</code>, and over <code>RoutedConnection</code> \
         with <code>SessionLayer</code>; {} keep-alive HTTP/1.1 clients per variant that send \
         back every cookie; {} requests per variant and workload, variants interleaved. \
         Statements on the primary are counted by the primary (every text, the router's own \
         included). A stale read misses the client's own last write; a time-travel read misses a \
         row the client had seen. Round trips per write: the write and the position reads after \
         writes; a position read that bounds a read which ran on the primary (so that the \
         scope's next read may use a replica) is that read's cost, counted apart. Budgets: in \
         the table's notes (<code>web_failures</code>); the latency ratio is printed, not \
         gated.</p><table><tr><th>database</th><th>replicas</th>\
         <th>workload</th><th>variant</th><th>p50</th><th>p99</th><th>p50 / plain</th>\
         <th>req/s</th><th>write p50 / plain</th><th>round trips per write</th>\
         <th>position reads bounding reads on the primary</th>\
         <th>primary statements per request</th><th>reads on replicas</th>\
         <th>Set-Cookie</th><th>stale</th><th>time-travel</th></tr>",
        num(&doc["clients"]),
        num(&doc["requests_per_variant"]),
    );
    for r in rows {
        let text = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
        let or_dash =
            |k: &str, f: &dyn Fn(f64) -> String| r[k].as_f64().map_or_else(|| "–".to_owned(), f);
        let write_ratio = or_dash("write_p50_ratio_to_plain", &|x| format!("×{x:.2}"));
        let trips = or_dash("write_round_trips", &|x| format!("{x:.2}"));
        let floors = or_dash("floors_read", &|x| format!("{x:.0}"));
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3} ms</td><td>{:.3} ms</td>\
             <td>×{:.2}</td><td>{:.0}</td><td>{write_ratio}</td><td>{trips}</td><td>{floors}</td>\
             <td>{:.3}</td>\
             <td>{:.1} %</td><td>{:.1} %</td><td>{}</td><td>{}</td></tr>",
            text("db"),
            text("lag"),
            text("workload"),
            text("variant"),
            num(&r["p50_ms"]),
            num(&r["p99_ms"]),
            num(&r["p50_ratio_to_plain"]),
            num(&r["req_per_s"]),
            num(&r["primary_statements_per_request"]),
            100.0 * num(&r["replica_share"]),
            100.0 * num(&r["set_cookie_share"]),
            num(&r["stale"]),
            num(&r["time_travel"]),
        );
    }
    html.push_str("</table>");
}

fn fleet_section(html: &mut String, doc: &Value) {
    let Some(rows) = doc.as_array() else { return };
    html.push_str(
        "<h2>Fleet cost (issue 25)</h2><p>K application instances against one PostgreSQL \
         primary and two replicas in containers: K processes with one connection each, or one \
         process with K connections; idle, then a read-your-writes workload (per connection a \
         write every 250 ms, read back at once and 100 ms later). Per node (primary, replicas): \
         the monitor's statements per second, counted by <code>pg_stat_statements</code>, and \
         the server's CPU (an observer's <code>SELECT 1</code> every 20 ms per node included: \
         it tells a server that answered nobody from a probe that alone went unanswered). Budgets: idle, at most 1 statement/s per node per instance, one \
         monitor per process; no false change, failed probe or stale read.</p><table><tr>\
         <th>instances</th><th>workload</th><th>monitor statements/s per node</th>\
         <th>server CPU per node</th><th>client CPU / instance</th><th>false changes</th>\
         <th>failed probes</th><th>reads on replicas</th><th>stale</th></tr>",
    );
    for r in rows {
        let nodes = r["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
        let join =
            |f: &dyn Fn(&Value) -> String| nodes.iter().map(f).collect::<Vec<_>>().join(" / ");
        let shape = match r["shape"].as_str() {
            Some("one_process") => format!("1 process × {}", num(&r["k"])),
            _ => format!("{} processes", num(&r["k"])),
        };
        let reads = num(&r["reads"]);
        let _ = write!(
            html,
            "<tr><td>{shape}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2} %</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            r["workload"].as_str().unwrap_or("?"),
            join(&|n| format!("{:.1}", num(&n["monitor_per_s"]))),
            join(&|n| n["cpu_pct"].as_f64().map_or("n/a".to_owned(), |c| format!("{c:.1} %"))),
            num(&r["client_cpu_pct"]),
            num(&r["false_changes"]),
            num(&r["failed_probes"]),
            if reads > 0.0 {
                format!("{:.1} %", 100.0 * num(&r["replica_reads"]) / reads)
            } else {
                "–".to_owned()
            },
            num(&r["stale"]),
        );
    }
    html.push_str("</table>");
}

/// What the report's runs measure: the commit (and whether the tree had uncommitted changes),
/// when, and on how many cores; written before the runs, shown at the top of the page.
fn measured_now() -> Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(crate::project_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    serde_json::json!({ "commit": commit, "dirty": dirty, "unix_time": at, "cores": cores })
}

/// The line naming what the page's figures were measured on.
fn stamp_section(html: &mut String, measured: &Value) {
    let text = match measured["commit"].as_str() {
        Some(commit) => format!(
            "Measured at commit <code>{commit}</code>{} (Unix time {}), on {} cores.",
            if measured["dirty"].as_bool() == Some(true) {
                " with uncommitted changes"
            } else {
                ""
            },
            measured["unix_time"],
            measured["cores"],
        ),
        None => "Measured at an unknown commit (runs made before the report stamped them, or \
                 outside a git checkout)."
            .to_owned(),
    };
    let _ = write!(html, "<p>{text}</p>");
}

/// The adapter's figures (a lookup's, a write's) that break their budgets, in words; a figure
/// missing counts as over its budget.
fn budget_failures(doc: &Value) -> Vec<String> {
    let read = crate::bench::AdapterCost {
        plain: doc["plain"].as_u64().unwrap_or(0),
        routed: doc["routed"].as_u64().unwrap_or(u64::MAX),
        plain_timers: num(&doc["plain_timers"]),
        routed_timers: num(&doc["routed_timers"]),
        spread: doc["spread"].as_u64().unwrap_or(0),
    };
    let write = crate::bench::AdapterCost {
        plain: doc["write"]["plain"].as_u64().unwrap_or(0),
        routed: doc["write"]["routed"].as_u64().unwrap_or(u64::MAX),
        plain_timers: 0.0,
        routed_timers: 0.0,
        spread: doc["write"]["spread"].as_u64().unwrap_or(0),
    };
    read.over_budget().into_iter().chain(write.write_over_budget()).collect()
}

fn adapter_section(html: &mut String, doc: &Value) -> anyhow::Result<()> {
    let (plain, routed) = (num(&doc["plain"]), num(&doc["routed"]));
    let _ = write!(
        html,
        "<h2>The adapter's cost</h2><p>Client-side instructions per SeaORM <code>find_by_id</code> \
         against the same PostgreSQL replica, 2 ms away through a delaying proxy so that every \
         lookup is polled as often (callgrind; the median of three alternating runs): plain SeaORM {plain:.0}, <code>RoutedConnection</code> {routed:.0}, a \
         difference of {:.0} ({:+.1} %; budget {}). Tokio timers registered per lookup: plain \
         {:.2}, routed {:.2} (budget: none more).</p><p>Per one-row <code>INSERT</code> on          the primary, 2 ms away alike, read-your-writes included: plain SeaORM {:.0},          <code>RoutedConnection</code> {:.0}, a difference of {:.0} (budget {}).</p>",
        routed - plain,
        100.0 * (routed - plain) / plain.max(1.0),
        crate::bench::ADDED_INSTRUCTIONS_BUDGET,
        num(&doc["plain_timers"]),
        num(&doc["routed_timers"]),
        num(&doc["write"]["plain"]),
        num(&doc["write"]["routed"]),
        num(&doc["write"]["routed"]) - num(&doc["write"]["plain"]),
        crate::bench::ADDED_WRITE_INSTRUCTIONS_BUDGET,
    );
    let chart = svg(W, 220, |root| {
        let top = plain.max(routed) * 1.1;
        let mut c = ChartBuilder::on(root)
            .caption("instructions per find_by_id (client side)", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(150)
            .build_cartesian_2d(0.0..top, 0.0..2.0)
            .map_err(plot_err)?;
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("instructions")
            .draw()
            .map_err(plot_err)?;
        for (i, (name, v)) in
            [("plain SeaORM", plain), ("RoutedConnection", routed)].iter().enumerate()
        {
            let y = i as f64;
            let color = COLORS[i];
            c.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.2), (*v, y + 0.8)],
                color.filled(),
            )))
            .map_err(plot_err)?;
            c.draw_series(std::iter::once(Text::new(
                format!("{name}: {v:.0}"),
                (top * 0.02, y + 0.5),
                ("sans-serif", 16).into_font().color(&WHITE),
            )))
            .map_err(plot_err)?;
        }
        Ok(())
    })?;
    html.push_str(&chart);
    Ok(())
}

/// One panel of the timeline: a line per series, events as vertical lines.
fn panel(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    end_s: f64,
    y_max: f64,
    events: &[(f64, String)],
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let mut c = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..end_s, 0.0..y_max)
        .map_err(plot_err)?;
    c.configure_mesh().x_desc("seconds").y_desc(y_desc).draw().map_err(plot_err)?;
    for (t, _) in events {
        c.draw_series(LineSeries::new(
            [(*t, 0.0), (*t, y_max)],
            ShapeStyle::from(&RGBColor(160, 160, 160)).stroke_width(1),
        ))
        .map_err(plot_err)?;
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn timeline_section(html: &mut String, doc: &Value) -> anyhow::Result<()> {
    let samples = doc["samples"].as_array().context("timeline samples")?;
    let events: Vec<(f64, String)> = doc["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| (num(&e["t_ms"]) / 1e3, e["what"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let end_s = samples.last().map_or(1.0, |s| num(&s["t_ms"]) / 1e3).max(1.0);
    // `host:port/db` → `n<i> :port`, short enough for a legend.
    let names: Vec<String> = samples
        .first()
        .and_then(|s| s["nodes"].as_array())
        .map(|n| {
            n.iter()
                .enumerate()
                .map(|(i, n)| {
                    let name = n["name"].as_str().unwrap_or("?");
                    let port = name.split('/').next().and_then(|a| a.rsplit(':').next());
                    format!("n{i} :{}", port.unwrap_or("?"))
                })
                .collect()
        })
        .unwrap_or_default();
    let per_node = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = samples
                    .iter()
                    .filter_map(|s| {
                        let n = &s["nodes"][i];
                        f(n).map(|v| (num(&s["t_ms"]) / 1e3, v))
                    })
                    .collect();
                (name.clone(), pts)
            })
            .collect()
    };
    let health = per_node(&|n| match n["health"].as_str() {
        Some("up") => Some(0.0),
        Some("suspect") => Some(1.0),
        Some("down") => Some(2.0),
        _ => None,
    });
    let lag = per_node(&|n| n["lag_ms"].as_f64());
    let share = {
        let totals: Vec<f64> = samples
            .iter()
            .map(|s| {
                s["nodes"].as_array().map_or(0.0, |n| n.iter().map(|n| num(&n["reads"])).sum())
            })
            .collect();
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = samples
                    .iter()
                    .zip(&totals)
                    .map(|(s, t)| {
                        (num(&s["t_ms"]) / 1e3, 100.0 * num(&s["nodes"][i]["reads"]) / t.max(1.0))
                    })
                    .collect();
                (name.clone(), pts)
            })
            .collect::<Vec<_>>()
    };
    let app: Vec<(String, Vec<(f64, f64)>)> =
        ["read_p50_ms", "read_p99_ms", "write_p50_ms", "write_p99_ms"]
            .iter()
            .map(|k| {
                let pts = samples
                    .iter()
                    .filter_map(|s| s[*k].as_f64().map(|v| (num(&s["t_ms"]) / 1e3, v)))
                    .collect();
                ((*k).replace("_ms", "").replace('_', " "), pts)
            })
            .collect();
    let max = |series: &[(String, Vec<(f64, f64)>)], floor: f64| {
        series.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(floor, f64::max) * 1.1
    };
    // Failures per sample: reads by the reader's consistency level, and writes; the samples in
    // which no node could prove the bounded readers' bound drawn as a band at the top.
    let per_sample = |f: &dyn Fn(&Value) -> f64| -> Vec<(f64, f64)> {
        samples.iter().map(|s| (num(&s["t_ms"]) / 1e3, f(s))).collect()
    };
    let mut failures: Vec<(String, Vec<(f64, f64)>)> = ["eventual", "session", "bounded"]
        .iter()
        .map(|level| {
            (format!("{level} reads failed"), per_sample(&|s: &Value| num(&s["failed"][*level])))
        })
        .collect();
    failures.push((
        "writer's read-backs failed".to_owned(),
        per_sample(&|s: &Value| num(&s["failed"]["read_back"])),
    ));
    failures.push((
        "writer's read-backs stale".to_owned(),
        per_sample(&|s: &Value| num(&s["failed"]["read_back_stale"])),
    ));
    failures.push(("writes failed".to_owned(), per_sample(&|s: &Value| num(&s["writes_failed"]))));
    // Per sample: the readers' p99 and slowest read, the reads hedged, and those
    // steered off a stalled replica.
    let tail: Vec<(String, Vec<(f64, f64)>)> =
        [("read p99", "read_p99_ms"), ("slowest read", "read_max_ms")]
            .iter()
            .map(|(name, k)| {
                let pts = samples
                    .iter()
                    .filter_map(|s| s[*k].as_f64().map(|v| (num(&s["t_ms"]) / 1e3, v)))
                    .collect();
                ((*name).to_owned(), pts)
            })
            .collect();
    let hedges = per_sample(&|s: &Value| num(&s["hedges"]));
    let skips = per_sample(&|s: &Value| num(&s["stalled_skips"]));
    let freeze = freeze_ms(doc).map(|(from, to)| (from / 1e3, to / 1e3));
    let fail_max = max(&failures, 4.0);
    failures.push((
        "no node provably within 500 ms".to_owned(),
        per_sample(&|s: &Value| if s["bounded_provable"] == false { fail_max / 1.1 } else { 0.0 }),
    ));
    html.push_str(
        "<h2>A fault timeline</h2><p>PostgreSQL primary and two replicas under a writer (each \
         write read back in its task) and three readers, one per consistency level (eventual; a \
         session that wrote a row of its own first; at most 500 ms stale), sampled every 250 ms. \
         Grey lines: the faults, in order: ",
    );
    for (t, what) in &events {
        // `{t}`: 10.5 s stays 10.5 (the freeze starts on the half second), 4 s stays 4.
        let _ = write!(html, "{t} s {what}; ");
    }
    html.push_str("</p>");
    let chart = svg(W, 8 * 260, |root| {
        let panels = root.split_evenly((8, 1));
        panel(
            &panels[0],
            "health per node (0 up, 1 suspect, 2 down)",
            "health",
            end_s,
            2.3,
            &events,
            &health,
        )?;
        panel(&panels[1], "replica lag per node", "ms", end_s, max(&lag, 10.0), &events, &lag)?;
        panel(
            &panels[2],
            "share of the reads each node served",
            "%",
            end_s,
            105.0,
            &events,
            &share,
        )?;
        panel(&panels[3], "application latency", "ms", end_s, max(&app, 1.0), &events, &app)?;
        panel(
            &panels[4],
            "failed reads (by consistency level) and writes, per sample",
            "failed",
            end_s,
            fail_max,
            &events,
            &failures,
        )?;
        tail_panel(&panels[5], end_s, &events, freeze, &tail)?;
        counts_panel(&panels[6], "hedged reads", end_s, &events, freeze, &hedges)?;
        let steered = "reads steered off a stalled replica";
        counts_panel(&panels[7], steered, end_s, &events, freeze, &skips)?;
        Ok(())
    })?;
    html.push_str(&chart);
    let _ = write!(html, "<p>{}</p>", failure_summary(doc, samples));
    let _ = write!(html, "<p>{}</p>", freeze_summary(doc, samples));
    Ok(())
}

/// The lowest value of the tail panel's logarithmic axis, in ms: faster samples are drawn there.
const TAIL_FLOOR_MS: f64 = 0.1;

/// The readers' p99 and slowest read per sample on a logarithmic axis (milliseconds up to the
/// seconds a read waiting out a frozen node would take), the freeze shaded (lighter: the second
/// after the thaw, which the budget covers too) and the budget drawn as a dashed red line.
fn tail_panel(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    end_s: f64,
    events: &[(f64, String)],
    freeze: Option<(f64, f64)>,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(FREEZE_READ_BUDGET_MS, f64::max)
        * 3.0;
    let mut c = ChartBuilder::on(root)
        .caption(
            "reads: p99 and slowest per sample (log scale; shaded: the freeze and the second \
             after it; dashed: the 250 ms budget)",
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..end_s, (TAIL_FLOOR_MS..top).log_scale())
        .map_err(plot_err)?;
    c.configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .draw()
        .map_err(plot_err)?;
    shade_freeze(&mut c, freeze, (TAIL_FLOOR_MS, top))?;
    for (t, _) in events {
        c.draw_series(LineSeries::new(
            [(*t, TAIL_FLOOR_MS), (*t, top)],
            ShapeStyle::from(&RGBColor(160, 160, 160)).stroke_width(1),
        ))
        .map_err(plot_err)?;
    }
    c.draw_series(DashedLineSeries::new(
        [(0.0, FREEZE_READ_BUDGET_MS), (end_s, FREEZE_READ_BUDGET_MS)],
        6,
        4,
        ShapeStyle::from(&COLORS[3]).stroke_width(1),
    ))
    .map_err(plot_err)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = points.iter().map(|&(t, v)| (t, v.max(TAIL_FLOOR_MS)));
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    // Below the fastest p99: the readers' reads take a millisecond or more.
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// A count per sample (`what`: the reads hedged, or those steered off a stalled replica;
/// `Stats::hedges`), as bars over the sample's interval, the freeze shaded as in [`tail_panel`].
fn counts_panel(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    what: &str,
    end_s: f64,
    events: &[(f64, String)],
    freeze: Option<(f64, f64)>,
    counts: &[(f64, f64)],
) -> anyhow::Result<()> {
    let top = counts.iter().map(|p| p.1).fold(4.0, f64::max) * 1.15;
    let total: f64 = counts.iter().map(|p| p.1).sum();
    let mut c = ChartBuilder::on(root)
        .caption(format!("{what} per sample ({total:.0} in all)"), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..end_s, 0.0..top)
        .map_err(plot_err)?;
    // Counts: whole numbers on the axis.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let labels = (top as usize + 1).clamp(2, 11);
    c.configure_mesh()
        .x_desc("seconds")
        .y_desc("reads")
        .y_labels(labels)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    shade_freeze(&mut c, freeze, (0.0, top))?;
    for (t, _) in events {
        c.draw_series(LineSeries::new(
            [(*t, 0.0), (*t, top)],
            ShapeStyle::from(&RGBColor(160, 160, 160)).stroke_width(1),
        ))
        .map_err(plot_err)?;
    }
    // A sample's bar spans the interval it counts, the period before its instant.
    let period =
        counts.windows(2).map(|w| w[1].0 - w[0].0).fold(f64::MAX, f64::min).clamp(0.05, 0.25);
    c.draw_series(
        counts
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(t, n)| Rectangle::new([(t - period, 0.0), (t, n)], COLORS[0].filled())),
    )
    .map_err(plot_err)?;
    Ok(())
}

/// Shades the freeze (from the freeze to the thaw) and, lighter, the second after the thaw.
fn shade_freeze<'a>(
    c: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<
            impl Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
            impl Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
        >,
    >,
    freeze: Option<(f64, f64)>,
    (low, high): (f64, f64),
) -> anyhow::Result<()> {
    let Some((from, to)) = freeze else { return Ok(()) };
    let blue = RGBColor(70, 130, 220);
    c.draw_series([
        Rectangle::new([(from, low), (to, high)], blue.mix(0.18).filled()),
        Rectangle::new([(to, low), (to + FREEZE_TAIL_MS / 1e3, high)], blue.mix(0.08).filled()),
    ])
    .map_err(plot_err)?;
    Ok(())
}

/// The slowest read allowed from a replica's freeze to [`FREEZE_TAIL_MS`] after its thaw
/// (a frozen replica costs a read milliseconds, not seconds).
const FREEZE_READ_BUDGET_MS: f64 = 250.0;

/// How long after the thaw the freeze's budgets still hold: the reads a frozen node held finish
/// when it answers again, and count against the freeze.
const FREEZE_TAIL_MS: f64 = 1_000.0;

/// When the timeline's replica was frozen and thawed, in ms from its start.
fn freeze_ms(doc: &Value) -> Option<(f64, f64)> {
    let events = doc["events"].as_array()?;
    let at = |word: &str| {
        events
            .iter()
            .find(|e| e["what"].as_str().is_some_and(|w| w.split_whitespace().any(|x| x == word)))
            .map(|e| num(&e["t_ms"]))
    };
    let (from, to) = (at("frozen")?, at("thawed")?);
    (from <= to).then_some((from, to))
}

/// The samples that count against the freeze: those whose interval (the sample's period before
/// its instant) meets the span from the freeze to [`FREEZE_TAIL_MS`] after the thaw.
fn freeze_samples(doc: &Value) -> Option<Vec<&Value>> {
    let (from, to) = freeze_ms(doc)?;
    let period = doc["sample_ms"].as_f64().unwrap_or(250.0);
    let samples = doc["samples"].as_array()?;
    Some(
        samples
            .iter()
            .filter(|s| num(&s["t_ms"]) > from && num(&s["t_ms"]) - period < to + FREEZE_TAIL_MS)
            .collect(),
    )
}

/// Reads of every level that failed in a sample, the writer's read-backs included.
fn failed_reads(s: &Value) -> f64 {
    ["eventual", "session", "bounded", "read_back"].iter().map(|k| num(&s["failed"][*k])).sum()
}

/// The freeze's budgets, in words, for those broken: from the replica's freeze to
/// [`FREEZE_TAIL_MS`] after its thaw no read takes over [`FREEZE_READ_BUDGET_MS`] (the slowest
/// of each sample, failed reads included), none fails, and every sample finished reads (a
/// sample with none had every reader stuck).
fn freeze_failures(doc: &Value) -> Vec<String> {
    let Some(samples) = freeze_samples(doc).filter(|s| !s.is_empty()) else {
        return vec!["the fault timeline has no freeze (or no sample in it)".to_owned()];
    };
    let mut over = Vec::new();
    let slow: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s["read_max_ms"].as_f64().map(|m| (num(&s["t_ms"]) / 1e3, m)))
        .filter(|&(_, m)| m > FREEZE_READ_BUDGET_MS)
        .collect();
    if let Some(&(t, worst)) = slow.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        over.push(format!(
            "during the freeze, {} samples had a read over {FREEZE_READ_BUDGET_MS:.0} ms, the \
             slowest {worst:.0} ms (sample at {t:.2} s) (budget {FREEZE_READ_BUDGET_MS:.0} ms)",
            slow.len()
        ));
    }
    let idle: Vec<String> = samples
        .iter()
        .filter(|s| s["read_max_ms"].as_f64().is_none())
        .map(|s| format!("{:.2} s", num(&s["t_ms"]) / 1e3))
        .collect();
    if !idle.is_empty() {
        over.push(format!(
            "during the freeze, no read finished in the samples at {}",
            idle.join(", ")
        ));
    }
    let failed: f64 = samples.iter().map(|s| failed_reads(s)).sum();
    if failed > 0.0 {
        over.push(format!("{failed:.0} reads failed during the freeze (budget 0)"));
    }
    over
}

/// The freeze in words: its window, the readers' p99 and slowest read per sample in it, failed
/// reads, and the hedges sent then and in the whole run.
fn freeze_summary(doc: &Value, samples: &[Value]) -> String {
    let (Some((from, to)), Some(window)) = (freeze_ms(doc), freeze_samples(doc)) else {
        return "The timeline has no freeze.".to_owned();
    };
    let ms = |v: &Value| v.as_f64().map_or("–".to_owned(), |m| format!("{m:.1}"));
    let per_sample: Vec<String> = window
        .iter()
        .map(|s| {
            format!(
                "{:.2} s: {} / {}",
                num(&s["t_ms"]) / 1e3,
                ms(&s["read_p99_ms"]),
                ms(&s["read_max_ms"])
            )
        })
        .collect();
    let slowest = window.iter().filter_map(|s| s["read_max_ms"].as_f64()).fold(0.0, f64::max);
    let hedged: f64 = window.iter().map(|s| num(&s["hedges"])).sum();
    let skipped: f64 = window.iter().map(|s| num(&s["stalled_skips"])).sum();
    let all_hedged: f64 = samples.iter().map(|s| num(&s["hedges"])).sum();
    let reads: f64 = samples
        .iter()
        .filter_map(|s| s["nodes"].as_array())
        .flat_map(|n| n.iter().map(|n| num(&n["reads"])))
        .sum();
    format!(
        "The freeze: a replica frozen (SIGSTOP) from {:.2} s to {:.2} s; counted to {:.2} s. \
         Slowest read {slowest:.1} ms (budget {FREEZE_READ_BUDGET_MS:.0} ms), failed reads \
         {:.0} (budget 0), hedges sent {hedged:.0}, reads steered off a stalled replica \
         {skipped:.0}. Per sample, read p99 / slowest in ms: {}. \
         Hedges in the whole run: {all_hedged:.0} of {reads:.0} reads ({:.2} %).",
        from / 1e3,
        to / 1e3,
        (to + FREEZE_TAIL_MS) / 1e3,
        window.iter().map(|s| failed_reads(s)).sum::<f64>(),
        per_sample.join("; "),
        100.0 * all_hedged / reads.max(1.0),
    )
}

/// The switchover budgets, in words, for those broken: from the switchover's event
/// on, no eventual or session read fails, the writer's read-backs included (their guarantees
/// never need a primary: a replica that has the session's writes, or the new primary, serves
/// them), and no bounded read fails while some node could prove the bound both when the read
/// started and when it failed.
fn switchover_failures(doc: &Value) -> Vec<String> {
    let Some(from) = switchover_ms(doc) else {
        return vec!["the fault timeline has no switchover".to_owned()];
    };
    let samples = doc["samples"].as_array().map_or(&[][..], Vec::as_slice);
    let after = samples.iter().filter(|s| num(&s["t_ms"]) > from);
    let (mut eventual, mut session, mut provable, mut read_back) = (0.0, 0.0, 0.0, 0.0);
    for s in after {
        eventual += num(&s["failed"]["eventual"]);
        session += num(&s["failed"]["session"]);
        provable += num(&s["failed"]["bounded_while_provable"]);
        // A write's read-back goes to the primary (no replica can have the write yet). The one
        // in flight when the primary stops has its connection ended under it; it waits for the
        // monitor's verdict and runs once more on the new primary (`Inner::after_lost`).
        read_back += num(&s["failed"]["read_back"]);
    }
    let mut over = Vec::new();
    for (n, what) in [
        (eventual, "eventual reads"),
        (session, "session reads"),
        (read_back, "writer's read-backs"),
        (provable, "bounded reads while a node could prove the bound"),
    ] {
        if n > 0.0 {
            over.push(format!("{n:.0} {what} failed from the switchover on (budget 0)"));
        }
    }
    // Read-your-writes holds through every fault, not only from the switchover on.
    let stale: f64 = samples.iter().map(|s| num(&s["failed"]["read_back_stale"])).sum();
    if stale > 0.0 {
        over.push(format!("{stale:.0} writer's read-backs missed the write just made (budget 0)"));
    }
    over
}

/// When the timeline's switchover began, in ms from its start.
fn switchover_ms(doc: &Value) -> Option<f64> {
    doc["events"]
        .as_array()?
        .iter()
        .find(|e| e["what"].as_str().is_some_and(|w| w.starts_with("switchover")))
        .map(|e| num(&e["t_ms"]))
}

/// The timeline's failures in words: totals by level, the switchover's (from its event to the
/// end), and the windows in which no node could prove the bounded readers' bound.
fn failure_summary(doc: &Value, samples: &[Value]) -> String {
    let switchover_ms = switchover_ms(doc).unwrap_or(f64::MAX);
    let sum = |from: f64, key: &dyn Fn(&Value) -> f64| -> f64 {
        samples.iter().filter(|s| num(&s["t_ms"]) > from).map(key).sum()
    };
    let mut text = String::new();
    for (what, from) in [("In all", -1.0), ("From the switchover on", switchover_ms)] {
        let _ = write!(
            text,
            "{what}: failed reads eventual {:.0}, session {:.0}, bounded {:.0} (of which while a \
             node could prove the bound {:.0}); the writer's read-backs failed {:.0}, stale {:.0}; \
             failed writes {:.0}. ",
            sum(from, &|s| num(&s["failed"]["eventual"])),
            sum(from, &|s| num(&s["failed"]["session"])),
            sum(from, &|s| num(&s["failed"]["bounded"])),
            sum(from, &|s| num(&s["failed"]["bounded_while_provable"])),
            sum(from, &|s| num(&s["failed"]["read_back"])),
            sum(from, &|s| num(&s["failed"]["read_back_stale"])),
            sum(from, &|s| num(&s["writes_failed"])),
        );
    }
    let mut windows = Vec::new();
    let mut open: Option<f64> = None;
    for s in samples {
        let t = num(&s["t_ms"]) / 1e3;
        match (s["bounded_provable"] == false, open) {
            (true, None) => open = Some(t),
            (false, Some(from)) => {
                windows.push(format!("{from:.2}–{t:.2} s"));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        windows.push(format!("{from:.2} s–end"));
    }
    let _ = write!(
        text,
        "Samples in which no node could prove a 500 ms bound: {}.",
        if windows.is_empty() { "none".to_owned() } else { windows.join(", ") }
    );
    text
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::{
        budget_failures, fleet_failures, freeze_failures, measured_now, monotonic_failures,
        ryw_failures, stamp_section, switchover_failures, web_failures,
    };

    /// The page names the commit its runs measured, and says when it cannot.
    #[test]
    fn the_page_names_what_it_measured() {
        let mut html = String::new();
        let stamp = json!({ "commit": "0123abc", "dirty": true, "unix_time": 5, "cores": 2 });
        stamp_section(&mut html, &stamp);
        assert_eq!(
            html,
            "<p>Measured at commit <code>0123abc</code> with uncommitted changes (Unix time 5), \
             on 2 cores.</p>"
        );
        let mut html = String::new();
        stamp_section(&mut html, &serde_json::Value::Null);
        assert!(html.contains("unknown commit"), "{html}");
        // This checkout: a commit of 40 hexadecimal digits.
        let now = measured_now();
        let commit = now["commit"].as_str().expect("xtask runs in a git checkout");
        assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{now}");
    }

    fn doc(back: u64, session: f64, eventual: f64) -> serde_json::Value {
        json!({ "monotonic": [
            { "level": "eventual", "reads": 400, "time_travel": 180, "worst": 20, "replica_share": eventual },
            { "level": "session", "reads": 400, "time_travel": back, "worst": 0, "replica_share": session },
        ]})
    }

    #[rstest]
    #[case::within(doc(0, 0.95, 1.0), 0)]
    #[case::exactly_90_percent(doc(0, 0.9, 1.0), 0)]
    #[case::time_travel(doc(1, 1.0, 1.0), 1)]
    #[case::too_few_on_replicas(doc(0, 0.5, 1.0), 1)]
    #[case::both(doc(3, 0.5, 1.0), 2)]
    #[case::no_rows(json!({ "rows": [] }), 1)]
    fn the_monotonic_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(monotonic_failures(&doc).len(), broken, "{:?}", monotonic_failures(&doc));
    }

    /// A web row through the layer at natural lag: `workload`, primary statements per request,
    /// replica share, `Set-Cookie` share, stale and time-travel reads.
    fn web_row(
        w: &str,
        statements: f64,
        share: f64,
        cookies: f64,
        stale: u64,
        travel: u64,
    ) -> serde_json::Value {
        json!({ "db": "postgres", "lag": "natural lag", "late": false, "workload": w,
            "variant": "routed+layer", "errors": 0, "primary_statements_per_request": statements,
            "replica_share": share, "set_cookie_share": cookies, "stale": stale, "time_travel": travel })
    }

    /// A mix through the layer and plain, both with the replicas late: `routed` and `plain`
    /// primary statements per request.
    fn late(routed: f64, plain: f64) -> Vec<serde_json::Value> {
        late_on("postgres", routed, plain)
    }

    /// [`late`] on database `db`.
    fn late_on(db: &str, routed: f64, plain: f64) -> Vec<serde_json::Value> {
        let row = |variant: &str, statements: f64| {
            let row = with(web_row("mix", statements, 0.0, 1.0, 0, 0), "late", json!(true));
            let row = with(row, "db", json!(db));
            let row = with(row, "lag", json!("200 ms late"));
            with(row, "variant", json!(variant))
        };
        vec![row("routed+layer", routed), row("plain", plain)]
    }

    /// [`late`] with the layer's requests per second and position reads per write.
    fn late_at(routed: f64, plain: f64, rate: f64, positions: f64) -> Vec<serde_json::Value> {
        let mut rows = late(routed, plain);
        rows[0] = with(rows[0].clone(), "req_per_s", json!(rate));
        rows[0] = with(rows[0].clone(), "positions_per_write", json!(positions));
        rows
    }

    /// `row` with `key` set to `value`.
    fn with(mut row: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        row[key] = value;
        row
    }

    fn web(rows: Vec<serde_json::Value>) -> serde_json::Value {
        let maria = json!({ "db": "mariadb", "lag": "natural lag", "late": true, "workload": "mix",
            "variant": "plain", "errors": 0 });
        json!({ "rows": rows.into_iter().chain([maria]).collect::<Vec<_>>() })
    }

    #[rstest]
    #[case::within(web(vec![web_row("read-only", 0.0, 1.0, 0.001, 0, 0), web_row("mix", 0.21, 0.99, 0.2, 0, 0)]), 0)]
    #[case::read_only_asks_the_primary(web(vec![web_row("read-only", 0.01, 1.0, 0.0, 0, 0)]), 1)]
    #[case::read_only_sends_cookies(web(vec![web_row("read-only", 0.0, 1.0, 0.02, 0, 0)]), 1)]
    #[case::mix_on_the_primary(web(vec![web_row("mix", 0.5, 0.5, 0.2, 0, 0)]), 2)]
    #[case::stale_and_back_in_time(web(vec![web_row("mix", 0.2, 0.9, 0.2, 1, 2)]), 2)]
    #[case::no_mariadb(json!({ "rows": [web_row("mix", 0.2, 0.9, 0.2, 0, 0)] }), 1)]
    #[case::one_position_per_write(web(vec![with(web_row("mix", 0.2, 0.9, 0.2, 0, 0), "write_round_trips", json!(2.0))]), 0)]
    #[case::two_positions_per_write(web(vec![with(web_row("mix", 0.2, 0.9, 0.2, 0, 0), "write_round_trips", json!(2.5))]), 1)]
    #[case::late_as_plain(web(late(1.005, 1.0)), 0)]
    #[case::late_reads_positions(web(late(1.1, 1.0)), 1)]
    #[case::mariadb_late_reads_positions(web([vec![web_row("mix", 0.2, 0.9, 0.2, 0, 0)], late_on("mariadb", 1.1, 1.0)].concat()), 1)]
    #[case::late_monitor_reads_within_its_rate(web(late_at(1.015, 1.0, 3000.0, 0.0)), 0)]
    #[case::late_monitor_reads_past_its_rate(web(late_at(1.08, 1.0, 3000.0, 0.0)), 1)]
    #[case::late_positions_read(web(late_at(1.005, 1.0, 3000.0, 0.2)), 1)]
    #[case::no_rows(json!({ "rows": [] }), 1)]
    fn the_web_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(web_failures(&doc).len(), broken, "{:?}", web_failures(&doc));
    }

    /// (a lookup's routed and plain instructions, a write's): the budgets each breaks.
    #[rstest]
    #[case::within(json!({ "plain": 75_000, "routed": 59_000, "write": { "plain": 60_000, "routed": 53_000 } }), 0)]
    #[case::write_over(json!({ "plain": 75_000, "routed": 59_000, "write": { "plain": 60_000, "routed": 61_000 } }), 1)]
    #[case::write_missing(json!({ "plain": 75_000, "routed": 59_000 }), 1)]
    #[case::both_over(json!({ "plain": 75_000, "routed": 70_000, "write": { "plain": 60_000, "routed": 130_000 } }), 2)]
    fn the_adapter_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(budget_failures(&doc).len(), broken, "{:?}", budget_failures(&doc));
    }

    fn ryw(share: f64, oracle: f64, stale: u64) -> serde_json::Value {
        json!({ "rows": [
            { "strategy": "naive (always replicas)", "replica_share": 1.0, "oracle_share": oracle, "stale": 121 },
            { "strategy": "rwsplit by position", "replica_share": share, "oracle_share": oracle, "stale": stale },
        ]})
    }

    #[rstest]
    #[case::all_of_the_oracle(ryw(0.555, 0.555, 0), 0)]
    #[case::at_the_budget(ryw(0.98 * 0.5, 0.5, 0), 0)]
    #[case::below(ryw(0.45, 0.5, 0), 1)]
    #[case::a_stale_read(ryw(0.5, 0.5, 1), 1)]
    #[case::no_row(json!({ "rows": [] }), 1)]
    fn the_read_your_writes_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(ryw_failures(&doc).len(), broken, "{:?}", ryw_failures(&doc));
    }

    /// A fleet row: shape, K, workload, per-node monitor statements/s and connections, and
    /// false changes, failed probes, stale reads.
    fn fleet(
        shape: &str,
        k: u64,
        workload: &str,
        per_s: f64,
        conns: u64,
        bad: [u64; 3],
    ) -> serde_json::Value {
        let node = json!({ "node": "n0", "monitor_per_s": per_s, "monitor_connections": conns, "cpu_pct": 1.0 });
        json!([{ "shape": shape, "k": k, "workload": workload, "nodes": [node],
                 "false_changes": bad[0], "failed_probes": bad[1], "stale": bad[2],
                 "reads": 0, "replica_reads": 0, "client_cpu_pct": 0.5 }])
    }

    #[rstest]
    #[case::idle_processes_within(fleet("processes", 50, "idle", 25.0, 50, [0, 0, 0]), 0)]
    #[case::idle_processes_over(fleet("processes", 50, "idle", 60.0, 50, [0, 0, 0]), 1)]
    #[case::one_process_shares(fleet("one_process", 50, "idle", 0.5, 1, [0, 0, 0]), 0)]
    #[case::one_process_not_shared(fleet("one_process", 50, "idle", 100.0, 50, [0, 0, 0]), 2)]
    #[case::busy_rows_have_no_statement_budget(fleet("processes", 50, "ryw", 2_000.0, 50, [0, 0, 0]), 0)]
    #[case::a_false_change(fleet("processes", 1, "ryw", 40.0, 1, [1, 0, 0]), 1)]
    #[case::failed_probes_and_stale_reads(fleet("processes", 1, "idle", 0.5, 1, [0, 2, 1]), 2)]
    #[case::a_failed_instance({
        let mut doc = fleet("processes", 10, "idle", 5.0, 10, [0, 0, 0]);
        doc[0]["failed_instances"] = json!(1);
        doc
    }, 1)]
    #[case::no_rows(json!([]), 1)]
    fn the_fleet_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(fleet_failures(&doc).len(), broken, "{:?}", fleet_failures(&doc));
    }

    /// Per sample: failed eventual, session, bounded, bounded-while-provable reads, and the
    /// writer's failed and stale read-backs.
    fn timeline(failed: [[u64; 6]; 3]) -> serde_json::Value {
        let sample = |t: u64, [e, s, b, p, r, st]: [u64; 6]| {
            json!({ "t_ms": t, "failed": {
                "eventual": e, "session": s, "bounded": b, "bounded_while_provable": p,
                "read_back": r, "read_back_stale": st } })
        };
        json!({
            "events": [{ "t_ms": 1000, "what": "switchover: primary stopped" }],
            "samples": [sample(750, failed[0]), sample(1250, failed[1]), sample(1500, failed[2])],
        })
    }

    const NONE: [u64; 6] = [0; 6];

    #[rstest]
    #[case::none_failed(timeline([NONE, NONE, NONE]), 0)]
    #[case::before_the_switchover_does_not_count(timeline([[3, 2, 5, 5, 4, 0], NONE, NONE]), 0)]
    #[case::bounded_while_nothing_was_provable(timeline([NONE, [0, 0, 40, 0, 0, 0], NONE]), 0)]
    #[case::an_eventual_read(timeline([NONE, [1, 0, 0, 0, 0, 0], NONE]), 1)]
    #[case::a_session_read(timeline([NONE, NONE, [0, 2, 0, 0, 0, 0]]), 1)]
    #[case::a_provable_bounded_read(timeline([NONE, [0, 0, 3, 1, 0, 0], NONE]), 1)]
    #[case::the_read_back_in_flight_at_the_stop(timeline([NONE, [0, 0, 0, 0, 1, 0], NONE]), 1)]
    #[case::a_read_back_after_the_stop(timeline([NONE, NONE, [0, 0, 0, 0, 1, 0]]), 1)]
    #[case::a_stale_read_back_even_before_the_switchover(timeline([[0, 0, 0, 0, 0, 1], NONE, NONE]), 1)]
    #[case::all(timeline([NONE, [1, 1, 1, 1, 2, 1], [0, 0, 0, 0, 1, 0]]), 5)]
    #[case::no_switchover(json!({ "events": [], "samples": [] }), 1)]
    fn the_switchover_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(switchover_failures(&doc).len(), broken, "{:?}", switchover_failures(&doc));
    }

    /// A timeline whose replica freezes at 1 s and thaws at 2 s (its budgets count to 3 s),
    /// sampled every 250 ms from 0.25 s to 4 s: every sample's slowest read 5 ms and no
    /// failure, but for `changed` samples: (t in ms, slowest read in ms or none, failed
    /// eventual reads, failed read-backs).
    fn frozen(changed: &[(u64, Option<f64>, u64, u64)]) -> serde_json::Value {
        let samples: Vec<_> = (1..=16_u64)
            .map(|i| {
                let t = 250 * i;
                let (max, eventual, read_back) = changed
                    .iter()
                    .find(|c| c.0 == t)
                    .map_or((Some(5.0), 0, 0), |c| (c.1, c.2, c.3));
                json!({ "t_ms": t, "read_p99_ms": max, "read_max_ms": max, "hedges": 0,
                    "failed": { "eventual": eventual, "session": 0, "bounded": 0,
                        "bounded_while_provable": 0, "read_back": read_back, "read_back_stale": 0 } })
            })
            .collect();
        json!({
            "sample_ms": 250,
            "events": [
                { "t_ms": 1000, "what": "replica n1 frozen (SIGSTOP)" },
                { "t_ms": 2000, "what": "replica n1 thawed (SIGCONT)" },
                { "t_ms": 3000, "what": "switchover: primary stopped" },
            ],
            "samples": samples,
        })
    }

    #[rstest]
    #[case::within(frozen(&[]), 0)]
    #[case::at_the_budget(frozen(&[(1500, Some(250.0), 0, 0)]), 0)]
    #[case::a_slow_read_in_the_freeze(frozen(&[(1250, Some(251.0), 0, 0)]), 1)]
    #[case::slow_reads_are_one_breach(frozen(&[(1250, Some(900.0), 0, 0), (1750, Some(5_000.0), 0, 0)]), 1)]
    #[case::a_slow_read_the_second_after_the_thaw(frozen(&[(3000, Some(5_000.0), 0, 0)]), 1)]
    #[case::a_slow_read_before_the_freeze(frozen(&[(1000, Some(5_000.0), 0, 0)]), 0)]
    #[case::a_slow_read_after_the_window(frozen(&[(3250, Some(5_000.0), 0, 0)]), 0)]
    #[case::a_failed_read(frozen(&[(1500, Some(5.0), 1, 0)]), 1)]
    #[case::a_failed_read_back(frozen(&[(2250, Some(5.0), 0, 1)]), 1)]
    #[case::a_failed_read_after_the_window(frozen(&[(3500, Some(5.0), 2, 0)]), 0)]
    #[case::no_read_finished(frozen(&[(1750, None, 0, 0)]), 1)]
    #[case::slow_and_failed(frozen(&[(1500, Some(5_000.0), 3, 0)]), 2)]
    #[case::no_freeze(json!({ "events": [{ "t_ms": 1000, "what": "switchover" }], "samples": [] }), 1)]
    #[case::frozen_never_thawed(json!({ "events": [{ "t_ms": 1000, "what": "replica n1 frozen" }], "samples": [{ "t_ms": 1250 }] }), 1)]
    fn the_freeze_budgets(#[case] doc: serde_json::Value, #[case] broken: usize) {
        assert_eq!(freeze_failures(&doc).len(), broken, "{:?}", freeze_failures(&doc));
    }
}
