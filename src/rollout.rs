//! Canary steps: a treatment's weight as a pure function of the schedule
//! and the clock, so every Envoy of a fleet agrees without talking to the
//! others.
//!
//! Before `start_unix_s` the weight is 0; then each step's weight holds for
//! its `hold_s`; once the schedule has run out the last step's weight stays.
//! The weight replaces the treatments' static weights (control gets the
//! rest) and moves only inside each treatment's lane, so the stickiness of
//! the lane layout holds through the ramp.
//!
//! A schedule may start with shadow steps: no treatment bucket, and a share
//! of control's requests copied to the shadow variants ([`crate::shadow`]).

/// A compiled schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// When the first step starts (Unix seconds).
    pub start_unix_s: u64,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// One step of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Buckets each treatment owns (0 in a shadow step).
    pub buckets: u32,
    /// How long the step lasts (the last one lasts forever).
    pub hold_s: u64,
    /// A shadow step's rate (parts per million); `None` for a step that
    /// exposes users.
    pub shadow_ppm: Option<u32>,
}

impl Rollout {
    /// Buckets each treatment owns at time `now_s`.
    pub fn buckets_at(&self, now_s: u64) -> u32 {
        self.step(now_s).map_or(0, |s| s.buckets)
    }

    /// Index of the step in force at `now_s` (`None` before the start).
    pub fn step_at(&self, now_s: u64) -> Option<usize> {
        let elapsed = now_s.checked_sub(self.start_unix_s)?;
        let mut until = 0u64;
        for (i, step) in self.steps.iter().enumerate() {
            until = until.saturating_add(step.hold_s);
            if elapsed < until {
                return Some(i);
            }
        }
        Some(self.steps.len().saturating_sub(1))
    }

    /// The shadow rate at `now_s` (parts per million) while a shadow step
    /// is in force; `None` before the start and in exposed steps.
    pub fn shadow_ppm_at(&self, now_s: u64) -> Option<u32> {
        self.step(now_s)?.shadow_ppm
    }

    /// The step in force at `now_s`.
    fn step(&self, now_s: u64) -> Option<&Step> {
        self.steps.get(self.step_at(now_s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps from `(buckets, hold_s, shadow_ppm)`.
    fn steps(of: &[(u32, u64, Option<u32>)]) -> Vec<Step> {
        of.iter()
            .map(|&(buckets, hold_s, shadow_ppm)| Step {
                buckets,
                hold_s,
                shadow_ppm,
            })
            .collect()
    }

    fn schedule() -> Rollout {
        // 1 % for 600 s, 5 % for 600 s, 25 % for 1800 s, then 50 %.
        Rollout {
            start_unix_s: 1_000,
            steps: steps(&[
                (100, 600, None),
                (500, 600, None),
                (2500, 1800, None),
                (5000, 0, None),
            ]),
        }
    }

    #[test]
    fn weight_follows_the_schedule() {
        let r = schedule();
        assert_eq!(r.buckets_at(0), 0);
        assert_eq!(r.buckets_at(999), 0);
        assert_eq!(r.buckets_at(1_000), 100);
        assert_eq!(r.buckets_at(1_599), 100);
        assert_eq!(r.buckets_at(1_600), 500);
        assert_eq!(r.buckets_at(2_200), 2500);
        assert_eq!(r.buckets_at(3_999), 2500);
        assert_eq!(r.buckets_at(4_000), 5000);
        assert_eq!(r.buckets_at(u64::MAX), 5000);
        assert_eq!(r.step_at(999), None);
        assert_eq!(r.step_at(2_200), Some(2));
        assert_eq!(r.step_at(10_000), Some(3));
    }

    #[test]
    fn a_schedule_that_ends_keeps_its_last_weight() {
        let r = Rollout {
            start_unix_s: 0,
            steps: steps(&[(1000, 10, None), (2000, 10, None)]),
        };
        assert_eq!(r.buckets_at(25), 2000);
    }

    #[test]
    fn shadow_steps_expose_nobody_and_copy_their_rate() {
        let r = Rollout {
            start_unix_s: 100,
            steps: steps(&[
                (0, 60, Some(100_000)),
                (0, 60, Some(500_000)),
                (500, 0, None),
            ]),
        };
        assert_eq!(r.shadow_ppm_at(99), None);
        assert_eq!(
            (r.buckets_at(100), r.shadow_ppm_at(100)),
            (0, Some(100_000))
        );
        assert_eq!(
            (r.buckets_at(160), r.shadow_ppm_at(160)),
            (0, Some(500_000))
        );
        assert_eq!((r.buckets_at(220), r.shadow_ppm_at(220)), (500, None));
    }
}
