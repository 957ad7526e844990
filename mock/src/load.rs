//! An open-loop load generator: requests leave on a fixed schedule, whether
//! or not earlier ones have been answered, and each latency is measured
//! from the time its request was due (not from when it was sent), so a
//! stalled proxy cannot hide its queue ("coordinated omission").
//!
//! Used by `make bench` for latency at a fixed request rate, where wrk's
//! closed loop can only report latency at saturation.

use crate::http::read_response;
use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Proxy port on 127.0.0.1.
    pub port: u16,
    /// Requests per second, over all connections.
    pub rate: u32,
    /// How long to send.
    pub duration: Duration,
    /// Keep-alive connections, each with an equal share of the schedule.
    pub connections: u32,
    /// Request path.
    pub path: String,
    /// Extra request headers (a distinct `x-user-id` is added per request,
    /// and `x-org-id` cycles over 50 values).
    pub headers: Vec<(String, String)>,
    /// Request body (JSON).
    pub body: Vec<u8>,
}

/// Latency figures of a run, in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests due in the run.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Non-2xx answers and connection failures.
    pub errors: u64,
    /// Latency percentiles of the 2xx answers (p50, p90, p99, p99.9) and
    /// the maximum.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest latency.
    pub max_us: u64,
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"sent":{},"ok":{},"errors":{},"p50_us":{},"p90_us":{},"p99_us":{},"p999_us":{},"max_us":{}}}"#,
            self.sent,
            self.ok,
            self.errors,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us
        )
    }
}

/// Latencies and error count of one connection's share.
type Share = (Vec<u64>, u64, u64);

/// Runs `plan` and reports the latency distribution.
pub fn run(plan: &Plan) -> Report {
    let connections = plan.connections.max(1);
    let start = Instant::now() + Duration::from_millis(20);
    let shares: Vec<Share> = thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|c| scope.spawn(move || drive(plan, c, connections, start)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut latencies = Vec::new();
    let mut report = Report::default();
    for (l, ok, errors) in shares {
        latencies.extend(l);
        report.ok += ok;
        report.errors += errors;
    }
    report.sent = report.ok + report.errors;
    latencies.sort_unstable();
    let pct = |q: f64| {
        let i = ((latencies.len() as f64) * q).ceil() as usize;
        latencies
            .get(i.saturating_sub(1).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    report.p50_us = pct(0.50);
    report.p90_us = pct(0.90);
    report.p99_us = pct(0.99);
    report.p999_us = pct(0.999);
    report.max_us = latencies.last().copied().unwrap_or(0);
    report
}

/// One connection: requests `c, c + n, c + 2n, …` of the schedule.
fn drive(plan: &Plan, c: u32, n: u32, start: Instant) -> Share {
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1)));
    let total = (plan.duration.as_secs_f64() * f64::from(plan.rate)) as u64;
    let mut latencies = Vec::with_capacity((total / u64::from(n) + 1) as usize);
    let (mut ok, mut errors) = (0, 0);
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut k = u64::from(c);
    while k < total {
        let due = start + interval.mul_f64(k as f64);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // Only answers that succeeded count in the latency distribution: a
        // fast local refusal or a refused connect would flatter it.
        match request(plan, &mut conn, k) {
            Ok(status) if (200..300).contains(&status) => {
                ok += 1;
                latencies.push(due.elapsed().as_micros() as u64);
            }
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
        k += u64::from(n);
    }
    (latencies, ok, errors)
}

fn request(
    plan: &Plan,
    conn: &mut Option<(TcpStream, BufReader<TcpStream>)>,
    k: u64,
) -> io::Result<u16> {
    if conn.is_none() {
        let s = TcpStream::connect(("127.0.0.1", plan.port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        *conn = Some((s.try_clone()?, BufReader::new(s)));
    }
    let Some((w, r)) = conn.as_mut() else {
        return Err(io::Error::other("no connection"));
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\nx-user-id: load-{k}\r\nx-org-id: org-{}\r\n",
        plan.path,
        plan.body.len(),
        k % 50
    );
    for (name, value) in &plan.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&plan.body);
    w.write_all(&out)?;
    let response = read_response(r, false)?;
    if response
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        *conn = None;
    }
    Ok(response.status)
}
