//! Runs independent jobs on every core, with a progress line on stderr.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on every job, spread over `workers` threads, and returns the
/// results in the jobs' order, or the first error. After each job a
/// progress line (`label` of the job) overwrites the previous one on
/// stderr; the line is cleared at the end.
pub fn run_all<J: Sync, R: Send>(
    jobs: &[J],
    workers: usize,
    work: impl Fn(&J) -> Result<R, String> + Sync,
    label: impl Fn(&J) -> String + Sync,
) -> Result<Vec<R>, String> {
    let results: Vec<Mutex<Option<R>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(k) else { break };
                    if failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    match work(job) {
                        Ok(r) => {
                            if let Ok(mut slot) = results[k].lock() {
                                *slot = Some(r);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut err = std::io::stderr().lock();
                    let _ = write!(
                        err,
                        "\r  training {n:>3}/{}: {:<86}",
                        jobs.len(),
                        label(job)
                    );
                    let _ = err.flush();
                }
            });
        }
    });
    eprint!("\r{:<110}\r", "");
    if let Some(e) = failure.into_inner().map_err(|e| e.to_string())? {
        return Err(e);
    }
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "a job did not run".to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_jobs_order_and_errors_surface() {
        let jobs: Vec<u32> = (0..50).collect();
        let out = run_all(&jobs, 3, |&j| Ok(j * 2), |j| format!("job {j}")).unwrap();
        assert_eq!(out, (0..50).map(|j| j * 2).collect::<Vec<_>>());
        let err = run_all(
            &jobs,
            2,
            |&j| {
                if j == 7 {
                    Err("seven".to_string())
                } else {
                    Ok(j)
                }
            },
            |_| String::new(),
        );
        assert_eq!(err.unwrap_err(), "seven");
    }
}
