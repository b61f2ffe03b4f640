//! Task hand-out for a run's workers: each worker walks its own contiguous range of the task
//! numbers, then helps the others with theirs.
//!
//! A single shared counter deals consecutive tasks to different workers, so that no worker's
//! tasks are neighbours: the GEMM's workers then read every other column block of the input,
//! and each block's lines must be fetched anew (`docs/tuning.md`, WorkerRanges). Contiguous
//! ranges
//! keep a worker's reads running on from one task to the next, and helping at the end still
//! balances a worker that started late or ran slower.

use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most ranges (workers beyond this share ranges: worker `w` starts on range `w % RANGES`).
const RANGES: usize = 64;

/// One range's next task, alone on its cache line so that claims in one range do not slow the
/// others.
#[derive(Debug)]
#[repr(align(64))]
struct Cursor(AtomicUsize);

/// Tasks `0..total` cut into one contiguous range per worker.
#[derive(Debug)]
pub struct WorkerRanges {
    cursors: [Cursor; RANGES],
    ranges: usize,
    total: usize,
}

impl WorkerRanges {
    /// Tasks `0..total` for `workers` workers (at least one range; allocates nothing).
    pub fn new(total: usize, workers: usize) -> WorkerRanges {
        let ranges = workers.clamp(1, RANGES);
        let cursors = std::array::from_fn(|range| Cursor(AtomicUsize::new(total * range / ranges)));
        WorkerRanges {
            cursors,
            ranges,
            total,
        }
    }

    /// The task numbers worker `worker` runs: its own range in order, then what is left of
    /// the following ranges.
    pub fn tasks(&self, worker: usize) -> WorkerTasks<'_> {
        WorkerTasks {
            ranges: self,
            range: worker % self.ranges,
            ranges_left: self.ranges,
        }
    }

    /// Runs tasks `0..total` on `workers` workers of the current rayon pool, each with its
    /// own `per_worker` floats of `scratch`: `task(index, worker_scratch)` once per task. One
    /// worker (or one task) runs on the calling thread. `scratch` holds at least
    /// `per_worker * workers` floats.
    pub fn run<F>(total: usize, workers: usize, scratch: &mut [f32], per_worker: usize, task: F)
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let ranges = WorkerRanges::new(total, workers);
        let work = |worker: usize, scratch: &mut [f32]| {
            for index in ranges.tasks(worker) {
                task(index, scratch);
            }
        };
        if workers <= 1 || total <= 1 {
            work(0, &mut scratch[..per_worker]);
        } else if per_worker == 0 {
            (0..workers.min(total))
                .into_par_iter()
                .for_each(|worker| work(worker, &mut []));
        } else {
            scratch[..per_worker * workers]
                .par_chunks_mut(per_worker)
                .enumerate()
                .for_each(|(worker, scratch)| work(worker, scratch));
        }
    }

    fn end(&self, range: usize) -> usize {
        self.total * (range + 1) / self.ranges
    }
}

/// The tasks one worker claims ([`WorkerRanges::tasks`]).
#[derive(Debug)]
pub struct WorkerTasks<'a> {
    ranges: &'a WorkerRanges,
    range: usize,
    ranges_left: usize,
}

impl Iterator for WorkerTasks<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.ranges_left > 0 {
            let task = self.ranges.cursors[self.range]
                .0
                .fetch_add(1, Ordering::Relaxed);
            if task < self.ranges.end(self.range) {
                return Some(task);
            }
            self.range = (self.range + 1) % self.ranges.ranges;
            self.ranges_left -= 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_runs_every_task_in_order() {
        let ranges = WorkerRanges::new(10, 1);
        assert_eq!(
            ranges.tasks(0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_worker_runs_its_own_range_first_then_helps_the_next() {
        let ranges = WorkerRanges::new(10, 3);
        let mut first = ranges.tasks(1);
        assert_eq!(first.by_ref().take(3).collect::<Vec<_>>(), [3, 4, 5]);
        // Range 1 is done; the worker goes on with range 2, then range 0.
        assert_eq!(first.next(), Some(6));
        let rest: Vec<usize> = ranges.tasks(2).collect();
        assert_eq!(rest, [7, 8, 9, 0, 1, 2]);
        assert_eq!(first.next(), None);
        assert_eq!(ranges.tasks(0).next(), None);
    }

    #[test]
    fn workers_together_claim_each_task_exactly_once() {
        for (total, workers) in [(0, 2), (1, 4), (7, 2), (100, 3), (1000, 70)] {
            let ranges = WorkerRanges::new(total, workers);
            let claimed = std::sync::Mutex::new(vec![0u32; total]);
            std::thread::scope(|scope| {
                for worker in 0..workers {
                    let (ranges, claimed) = (&ranges, &claimed);
                    scope.spawn(move || {
                        for task in ranges.tasks(worker) {
                            claimed.lock().unwrap()[task] += 1;
                        }
                    });
                }
            });
            assert!(
                claimed
                    .into_inner()
                    .unwrap()
                    .iter()
                    .all(|&count| count == 1)
            );
        }
    }
}
