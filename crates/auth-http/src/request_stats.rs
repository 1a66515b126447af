//! Request counts and latencies, recorded per thread and added up when
//! scraped.
//!
//! Every request records one count and one latency. Kept in shared
//! Prometheus families, that was two read locks, a write lock and an atomic
//! increment on memory both request workers write, so the cache lines
//! bounced between the cores on every request (≈ 4 % of `/healthz`
//! throughput, measured against a build without the recording). Here each
//! thread writes only its own shard, behind a lock no other thread takes
//! except a scrape, which adds the shards up. Nothing is lost when a thread
//! ends: the shards belong to the [`RequestStats`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Upper bounds of the latency buckets, in seconds: 0.25 ms … 4 s, doubling
/// (then `+Inf`).
const BUCKETS: usize = 15;

fn bucket_bound(i: usize) -> f64 {
    0.000_25 * f64::from(1u32 << i)
}

fn bucket_bounds() -> [f64; BUCKETS] {
    std::array::from_fn(bucket_bound)
}

/// The first bucket `seconds` falls in (`BUCKETS`: only `+Inf`).
fn bucket_of(seconds: f64) -> usize {
    (0..BUCKETS)
        .find(|&i| seconds <= bucket_bound(i))
        .unwrap_or(BUCKETS)
}

#[derive(Clone, Debug, Default)]
struct Latency {
    sum: f64,
    count: u64,
    /// Observations per bucket (not cumulative); the last is `+Inf` only.
    buckets: [u64; BUCKETS + 1],
}

impl Latency {
    fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        self.buckets[bucket_of(seconds)] += 1;
    }

    fn add(&mut self, other: &Latency) {
        self.sum += other.sum;
        self.count += other.count;
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }
}

/// What one thread saw of one route.
#[derive(Default)]
struct RouteStats {
    latency: Latency,
    /// (method label, status, count): few per route, so a list.
    answers: Vec<(&'static str, u16, u64)>,
}

/// Every thread's figures of one route, added up.
#[derive(Default)]
struct RouteTotals {
    latency: Latency,
    /// Counts by (method label, status).
    answers: BTreeMap<(&'static str, u16), u64>,
}

/// One thread's requests, by route pattern (`unmatched` for none).
#[derive(Default)]
struct Shard {
    routes: HashMap<String, RouteStats>,
}

/// Tells the [`RequestStats`] of one registry apart in a thread's list.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard of each live [`RequestStats`] it recorded into.
    static SHARDS: RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while recording leaves counts, never broken invariants.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `http_requests` counter and `http_request_duration_seconds`
/// histogram, as a Prometheus collector.
#[derive(Debug)]
pub(crate) struct RequestStats {
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("routes", &self.routes.len())
            .finish()
    }
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
        }
    }
}

impl RequestStats {
    /// Counts one answer. Allocates only for a thread's first request and a
    /// route's first answer on that thread (`route` is then kept).
    pub(crate) fn record(
        &self,
        route: Option<String>,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            let index = match shards.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => {
                    // Shards of registries dropped since (only this thread
                    // still holds them) go first.
                    shards.retain(|(_, shard)| Arc::strong_count(shard) > 1);
                    let shard = Arc::new(Mutex::new(Shard::default()));
                    lock_list(&self.shards).push(shard.clone());
                    shards.push((self.id, shard));
                    shards.len() - 1
                }
            };
            let mut shard = lock(&shards[index].1);
            let route_name = route.as_deref().unwrap_or("unmatched");
            let stats = match shard.routes.get_mut(route_name) {
                Some(stats) => stats,
                None => shard
                    .routes
                    .entry(route.unwrap_or_else(|| "unmatched".to_owned()))
                    .or_default(),
            };
            stats.latency.observe(seconds);
            match stats
                .answers
                .iter_mut()
                .find(|(m, s, _)| *m == method && *s == status)
            {
                Some((_, _, count)) => *count += 1,
                None => stats.answers.push((method, status, 1)),
            }
        });
    }

    /// Every thread's figures added up, by route.
    fn totals(&self) -> BTreeMap<String, RouteTotals> {
        let mut totals: BTreeMap<String, RouteTotals> = BTreeMap::new();
        for shard in lock_list(&self.shards).iter() {
            for (route, stats) in &lock(shard).routes {
                let route_totals = totals.entry(route.clone()).or_default();
                route_totals.latency.add(&stats.latency);
                for &(method, status, count) in &stats.answers {
                    *route_totals.answers.entry((method, status)).or_default() += count;
                }
            }
        }
        totals
    }
}

fn lock_list(list: &Mutex<Vec<Arc<Mutex<Shard>>>>) -> MutexGuard<'_, Vec<Arc<Mutex<Shard>>>> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

impl Collector for RequestStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.totals();
        // As the registry does for an empty family: no descriptor either.
        if totals.is_empty() {
            return Ok(());
        }
        let mut requests = encoder.encode_descriptor(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            None,
            MetricType::Counter,
        )?;
        for (route, route_totals) in &totals {
            for (&(method, status), &count) in &route_totals.answers {
                let status = status.to_string();
                let labels = [
                    ("route", route.as_str()),
                    ("method", method),
                    ("status", &status),
                ];
                ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
            }
        }
        let bounds = bucket_bounds();
        let mut latency = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "Time to answer, by route pattern",
            None,
            MetricType::Histogram,
        )?;
        for (route, route_totals) in &totals {
            let observed = &route_totals.latency;
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(observed.buckets)
                .collect();
            latency
                .encode_family(&[("route", route.as_str())])?
                .encode_histogram::<NoLabelSet>(observed.sum, observed.count, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_upper_bounds_in_order() {
        assert_eq!(bucket_bounds()[0], 0.000_25);
        assert_eq!(bucket_bounds()[BUCKETS - 1], 4.096);
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.000_25), 0);
        assert_eq!(bucket_of(0.000_26), 1);
        assert_eq!(bucket_of(4.096), BUCKETS - 1);
        assert_eq!(bucket_of(5.0), BUCKETS);
    }

    #[test]
    fn threads_add_up_and_outlive_their_threads() {
        let stats = Arc::new(RequestStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        stats.record(Some("/a".to_owned()), "GET", 200, 0.001);
                    }
                    stats.record(None, "POST", 404, 10.0);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let totals = stats.totals();
        let a = &totals["/a"];
        assert_eq!((a.latency.count, a.answers[&("GET", 200)]), (40, 40));
        assert_eq!(a.latency.buckets[bucket_of(0.001)], 40);
        let unmatched = &totals["unmatched"];
        assert_eq!(
            (unmatched.latency.count, unmatched.answers[&("POST", 404)]),
            (4, 4)
        );
        assert_eq!(unmatched.latency.buckets[BUCKETS], 4);
    }

    #[test]
    fn each_registry_counts_its_own() {
        let one = RequestStats::default();
        let two = RequestStats::default();
        one.record(None, "GET", 200, 0.1);
        two.record(None, "GET", 200, 0.1);
        two.record(None, "GET", 200, 0.1);
        assert_eq!(one.totals()["unmatched"].latency.count, 1);
        assert_eq!(two.totals()["unmatched"].latency.count, 2);
        drop(one);
        let three = RequestStats::default();
        three.record(None, "GET", 200, 0.1);
        // `one`'s shard was pruned from this thread's list when `three`'s
        // was added.
        assert_eq!(SHARDS.with(|s| s.borrow().len()), 2);
    }
}
