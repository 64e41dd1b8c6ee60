//! Serving the bus's metrics in the Prometheus text format, when asked:
//! `cargo run -p ticketing -- --metrics-addr 127.0.0.1:9000` (or `METRICS_ADDR=127.0.0.1:9000`)
//! installs `metrics-exporter-prometheus`'s recorder, with its HTTP listener on that address,
//! before the bus is built; after the day the demo keeps serving until Ctrl-C, so the day's
//! numbers can be scraped (`curl http://127.0.0.1:9000/metrics`). Without it nothing is
//! installed and the bus's metrics are the `metrics` facade's no-ops.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Bucket bounds (seconds) of the duration histograms: from half a millisecond to a minute.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The address asked for: `--metrics-addr ADDR` (or `--metrics-addr=ADDR`) among `args`, else
/// `METRICS_ADDR`; `None` when neither is given. `Err` names what is wrong with the arguments.
pub fn metrics_addr(
    args: impl IntoIterator<Item = String>,
    env: Option<String>,
) -> Result<Option<SocketAddr>, String> {
    let mut args = args.into_iter();
    let mut given = None;
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--metrics-addr") {
            Some("") => args
                .next()
                .ok_or("--metrics-addr needs an address, e.g. 127.0.0.1:9000")?,
            Some(rest) if rest.starts_with('=') => rest[1..].to_owned(),
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (expected --metrics-addr ADDR)"
                ))
            }
        };
        given = Some(value);
    }
    match given.or(env.filter(|e| !e.is_empty())) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| format!("metrics address {text:?}: {e}")),
    }
}

/// Installs the Prometheus recorder, its HTTP listener on `addr` (on the current runtime).
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Option<SocketAddr>, String> {
        metrics_addr(args.iter().map(|a| (*a).to_owned()), env.map(str::to_owned))
    }

    #[test]
    fn the_address_comes_from_the_flag_or_the_environment() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parse(&[], None), Ok(None));
        assert_eq!(parse(&[], Some("")), Ok(None));
        assert_eq!(
            parse(&["--metrics-addr", "127.0.0.1:9000"], None),
            Ok(Some(addr))
        );
        assert_eq!(
            parse(&["--metrics-addr=127.0.0.1:9000"], None),
            Ok(Some(addr))
        );
        assert_eq!(parse(&[], Some("127.0.0.1:9000")), Ok(Some(addr)));
        assert!(parse(&["--metrics-addr"], None).is_err());
        assert!(parse(&["--metrics-addr", "nowhere"], None).is_err());
        assert!(parse(&["--verbose"], None).is_err());
    }
}
