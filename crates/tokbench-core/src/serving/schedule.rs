//! The continuous-batching schedule, without a device: which rows each engine step runs, and
//! when each request's tokens come out once the step's duration is known. The engine runs it
//! with GPU-timed steps; the analytic estimate runs the same schedule with predicted steps.
//!
//! Policy (vLLM's chunked prefill with `max_num_partial_prefills = 1`):
//! - closed loop: `concurrency` slots, every request waiting from the start; a slot that is free
//!   at the start of a step takes the next request (its admission time is then);
//! - every step first gives one row to each decoding request (one new token each), then fills
//!   the rest of the step's token budget with the next chunk of the oldest request still
//!   prefilling (one chunk per step);
//! - a request's first output token comes from the step that prefills its last prompt token;
//!   each later token from one decode row; after `osl` tokens the slot is free again.
//!
//! Time is engine time: the sum of the steps' durations (host time between steps is not the
//! device's and is left out).

/// One request through the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTiming {
    /// Engine seconds when the request entered its slot.
    pub admitted_s: f64,
    /// Engine seconds at the end of the step that produced each output token, in order.
    pub token_times_s: Vec<f64>,
    /// True once every output token is out.
    pub finished: bool,
}

/// A prefill chunk of one step: prompt positions `start..start + len` of the request in `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Slot (KV cache row) of the request.
    pub slot: u32,
    /// First prompt position of the chunk.
    pub start: u32,
    /// Tokens in the chunk.
    pub len: u32,
    /// True when the chunk ends the prompt (its last row makes the first output token).
    pub last: bool,
}

/// A decode row of one step: the request in `slot` feeds the token at position `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeRow {
    /// Slot (KV cache row) of the request.
    pub slot: u32,
    /// Position of the fed token; it attends to positions `0..=pos`.
    pub pos: u32,
}

/// What one engine step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    /// The prefill chunk, if any request is prefilling and the budget leaves room.
    pub chunk: Option<Chunk>,
    /// One row per decoding request, by slot.
    pub decode: Vec<DecodeRow>,
}

impl StepPlan {
    /// Rows of the step's batched pass.
    pub fn rows(&self) -> u32 {
        self.chunk.map_or(0, |c| c.len) + self.decode.len() as u32
    }
}

/// When a point stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// After this many requests completed.
    Requests(u32),
    /// After this many engine seconds (requests still running are cut off there).
    Duration(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SlotState {
    Free,
    Prefilling { request: usize, done: u32 },
    Decoding { request: usize, generated: u32 },
}

/// The schedule of one concurrency point.
#[derive(Debug, Clone)]
pub struct Schedule {
    isl: u32,
    osl: u32,
    budget: u32,
    limit: Limit,
    slots: Vec<SlotState>,
    /// Every admitted request, in admission order.
    pub requests: Vec<RequestTiming>,
    /// Engine seconds so far.
    pub clock_s: f64,
    /// Steps completed.
    pub steps: u64,
    /// Prompt tokens prefilled so far.
    pub prompt_tokens: u64,
    /// Engine seconds when every slot first held a request.
    pub all_busy_s: Option<f64>,
    /// Engine seconds when a slot first went free with no request left to take.
    pub first_drain_s: Option<f64>,
    planned: Option<StepPlan>,
}

impl Schedule {
    /// A point with `concurrency` slots; requests of `isl` prompt and `osl` output tokens (both
    /// at least 1); `budget` tokens per step, at least `concurrency` so a prefill always gets
    /// room.
    pub fn new(concurrency: u32, isl: u32, osl: u32, budget: u32, limit: Limit) -> Self {
        assert!(concurrency >= 1 && isl >= 1 && osl >= 1 && budget >= concurrency);
        Self {
            isl,
            osl,
            budget,
            limit,
            slots: vec![SlotState::Free; concurrency as usize],
            requests: Vec::new(),
            clock_s: 0.0,
            steps: 0,
            prompt_tokens: 0,
            all_busy_s: None,
            first_drain_s: None,
            planned: None,
        }
    }

    fn admitting(&self) -> bool {
        match self.limit {
            Limit::Requests(n) => self.requests.len() < n as usize,
            Limit::Duration(d) => self.clock_s < d,
        }
    }

    /// Requests that produced all their tokens.
    pub fn completed(&self) -> u32 {
        self.requests.iter().filter(|r| r.finished).count() as u32
    }

    /// Output tokens produced so far.
    pub fn output_tokens(&self) -> u64 {
        self.requests
            .iter()
            .map(|r| r.token_times_s.len() as u64)
            .sum()
    }

    /// How far the point is, from 0 to 1 (for a progress bar).
    pub fn progress(&self) -> f64 {
        match self.limit {
            Limit::Requests(n) => {
                let per = f64::from(self.isl + self.osl);
                let done: f64 = self
                    .slots
                    .iter()
                    .map(|s| match *s {
                        SlotState::Free => 0.0,
                        SlotState::Prefilling { done, .. } => f64::from(done),
                        SlotState::Decoding { generated, .. } => f64::from(self.isl + generated),
                    })
                    .sum();
                ((f64::from(self.completed()) + done / per) / f64::from(n)).min(1.0)
            }
            Limit::Duration(d) => (self.clock_s / d).min(1.0),
        }
    }

    /// Admits requests into free slots and plans the next step; `None` when the point is over.
    pub fn plan(&mut self) -> Option<StepPlan> {
        if let Limit::Duration(d) = self.limit
            && self.clock_s >= d
        {
            return None;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot] == SlotState::Free && self.admitting() {
                self.requests.push(RequestTiming {
                    admitted_s: self.clock_s,
                    token_times_s: Vec::new(),
                    finished: false,
                });
                self.slots[slot] = SlotState::Prefilling {
                    request: self.requests.len() - 1,
                    done: 0,
                };
            }
        }
        if self.all_busy_s.is_none() && self.slots.iter().all(|s| *s != SlotState::Free) {
            self.all_busy_s = Some(self.clock_s);
        }
        let decode: Vec<DecodeRow> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match *s {
                SlotState::Decoding { generated, .. } => Some(DecodeRow {
                    slot: slot as u32,
                    // Token k (from 1) of the output sits at position isl + k - 1; the one fed
                    // now is the latest, k = generated.
                    pos: self.isl + generated - 1,
                }),
                _ => None,
            })
            .collect();
        let room = self.budget - decode.len() as u32;
        // The oldest prefilling request: the smallest request index.
        let chunk = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match *s {
                SlotState::Prefilling { request, done } => Some((request, slot, done)),
                _ => None,
            })
            .min()
            .filter(|_| room > 0)
            .map(|(_, slot, done)| {
                let len = (self.isl - done).min(room);
                Chunk {
                    slot: slot as u32,
                    start: done,
                    len,
                    last: done + len == self.isl,
                }
            });
        if chunk.is_none() && decode.is_empty() {
            return None;
        }
        let plan = StepPlan { chunk, decode };
        self.planned = Some(plan.clone());
        Some(plan)
    }

    /// Records that the planned step took `duration_s` engine seconds.
    pub fn complete(&mut self, duration_s: f64) {
        let plan = self.planned.take().expect("complete() follows plan()");
        self.clock_s += duration_s;
        self.steps += 1;
        let now = self.clock_s;
        let osl = self.osl;
        let mut freed = false;
        if let Some(c) = plan.chunk {
            self.prompt_tokens += u64::from(c.len);
            let slot = c.slot as usize;
            if let SlotState::Prefilling { request, done } = self.slots[slot] {
                if c.last {
                    self.requests[request].token_times_s.push(now);
                    self.slots[slot] = if osl == 1 {
                        self.requests[request].finished = true;
                        freed = true;
                        SlotState::Free
                    } else {
                        SlotState::Decoding {
                            request,
                            generated: 1,
                        }
                    };
                } else {
                    self.slots[slot] = SlotState::Prefilling {
                        request,
                        done: done + c.len,
                    };
                }
            }
        }
        for row in &plan.decode {
            let slot = row.slot as usize;
            if let SlotState::Decoding { request, generated } = self.slots[slot] {
                self.requests[request].token_times_s.push(now);
                if generated + 1 == osl {
                    self.requests[request].finished = true;
                    self.slots[slot] = SlotState::Free;
                    freed = true;
                } else {
                    self.slots[slot] = SlotState::Decoding {
                        request,
                        generated: generated + 1,
                    };
                }
            }
        }
        if freed && self.first_drain_s.is_none() && !self.admitting() {
            self.first_drain_s = Some(now);
        }
    }

    /// The steady window (start, end) in engine seconds, and whether it fell back to the whole
    /// point.
    pub fn steady_window(&self) -> (f64, f64, bool) {
        match (self.all_busy_s, self.first_drain_s) {
            (Some(a), Some(b)) if b > a => (a, b, false),
            _ => (0.0, self.clock_s, true),
        }
    }

    /// Output tokens and prompt tokens whose steps ended inside (start, end].
    pub fn tokens_between(&self, start: f64, end: f64) -> u64 {
        self.requests
            .iter()
            .flat_map(|r| &r.token_times_s)
            .filter(|&&t| t > start && t <= end)
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut Schedule, step_s: impl Fn(&StepPlan) -> f64) -> Vec<StepPlan> {
        let mut plans = Vec::new();
        while let Some(p) = s.plan() {
            s.complete(step_s(&p));
            plans.push(p);
        }
        plans
    }

    #[test]
    fn one_slot_prefills_in_chunks_then_decodes_one_token_per_step() {
        let mut s = Schedule::new(1, 10, 3, 4, Limit::Requests(1));
        let plans = run(&mut s, |_| 1.0);
        let chunks: Vec<_> = plans.iter().filter_map(|p| p.chunk).collect();
        assert_eq!(
            chunks.iter().map(|c| (c.start, c.len)).collect::<Vec<_>>(),
            [(0, 4), (4, 4), (8, 2)]
        );
        assert!(chunks[2].last && !chunks[1].last);
        // Two decode steps feed positions 10 and 11.
        let pos: Vec<u32> = plans
            .iter()
            .flat_map(|p| &p.decode)
            .map(|d| d.pos)
            .collect();
        assert_eq!(pos, [10, 11]);
        let r = &s.requests[0];
        assert_eq!(r.token_times_s, [3.0, 4.0, 5.0]);
        assert!(r.finished);
        assert_eq!(s.prompt_tokens, 10);
    }

    #[test]
    fn decode_rows_take_the_budget_first_and_a_freed_slot_takes_the_next_request() {
        let mut s = Schedule::new(2, 4, 2, 5, Limit::Requests(3));
        let plans = run(&mut s, |_| 1.0);
        // Step 1: request 0 prefills all 4 tokens (budget 5); step 2: request 1 gets 4 of the
        // room left after request 0's decode row.
        assert_eq!(plans[0].chunk.unwrap().slot, 0);
        assert_eq!(plans[1].decode.len(), 1);
        assert_eq!(plans[1].chunk.unwrap().len, 4);
        assert_eq!(s.completed(), 3);
        assert_eq!(s.requests.len(), 3);
        // Request 2 entered slot 0 when request 0 finished.
        assert_eq!(s.requests[2].admitted_s, 2.0);
        assert!(s.all_busy_s == Some(0.0));
        assert!(s.first_drain_s.is_some());
        assert_eq!(s.output_tokens(), 6);
    }

    #[test]
    fn a_duration_limit_cuts_requests_off() {
        let mut s = Schedule::new(2, 4, 100, 8, Limit::Duration(10.0));
        run(&mut s, |_| 1.0);
        assert_eq!(s.clock_s, 10.0);
        assert_eq!(s.completed(), 0);
        assert!(s.output_tokens() > 0);
    }
}
