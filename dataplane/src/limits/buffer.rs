//! The process-wide budget for buffered upstream answers (`--answer-buffer-bytes`).
//!
//! A non-streamed answer is read whole before it is relayed: it must be validated (an error
//! body or a malformed answer is an upstream error, with a fallback while nothing reached the
//! caller) and, across dialects, translated. Each answer is bounded by the largest answer
//! size; this budget bounds their sum, so many large answers at once (embeddings batches) cannot
//! take the process past its memory limit.
//!
//! - The first [`FREE_BYTES`] of every answer are not counted: ordinary answers never touch the
//!   budget, and their number is bounded by the connections anyway.
//! - An answer that declares its length reserves it at once, waiting for room up to the time
//!   the request has left; one without a declared length reserves as it grows and is refused
//!   when the budget is full (a partial reservation that waited could deadlock with others).
//! - The reservation is held until the answer's last byte was handed to the caller's
//!   connection.
//!
//! A refusal is the gateway's own (503 with `Retry-After`), never counted by a breaker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of each answer that are not counted.
pub const FREE_BYTES: usize = 256 << 10;

/// The budget is kept in units of this many bytes (the semaphore counts `u32` permits).
const UNIT: usize = 1 << 10;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct AnswerBuffer {
    sem: Arc<Semaphore>,
    units: usize,
}

/// Room taken in the budget, given back on drop.
#[derive(Debug, Default)]
pub struct BufferPermit {
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes covered (beyond the free allowance).
    bytes: usize,
}

/// The budget has no room for an answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the gateway's buffer for upstream answers is full ({budget} bytes in use); try again")]
pub struct BufferFull {
    /// The budget, bytes.
    pub budget: usize,
}

impl AnswerBuffer {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Self {
        let units = bytes
            .div_ceil(UNIT)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// The budget, bytes.
    pub fn budget(&self) -> usize {
        self.units * UNIT
    }

    /// Bytes in use now.
    pub fn in_use(&self) -> usize {
        (self.units - self.sem.available_permits()) * UNIT
    }

    /// Reserves room for an answer of `total` bytes, waiting up to `wait` for it.
    pub async fn reserve(&self, total: usize, wait: Duration) -> Result<BufferPermit, BufferFull> {
        let units = units_for(total);
        if units == 0 {
            return Ok(BufferPermit::default());
        }
        if units > self.units {
            return Err(self.full());
        }
        let n = u32::try_from(units).map_err(|_| self.full())?;
        match tokio::time::timeout(wait, self.sem.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(BufferPermit {
                permit: Some(permit),
                bytes: units * UNIT,
            }),
            _ => Err(self.full()),
        }
    }

    /// Grows `permit` to cover an answer of `total` bytes, without waiting.
    pub fn grow(&self, permit: &mut BufferPermit, total: usize) -> Result<(), BufferFull> {
        let units = units_for(total);
        let have = permit.bytes / UNIT;
        if units <= have {
            return Ok(());
        }
        let n = u32::try_from(units - have).map_err(|_| self.full())?;
        let more = self
            .sem
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| self.full())?;
        match &mut permit.permit {
            Some(p) => p.merge(more),
            None => permit.permit = Some(more),
        }
        permit.bytes = units * UNIT;
        Ok(())
    }

    fn full(&self) -> BufferFull {
        BufferFull {
            budget: self.budget(),
        }
    }
}

fn units_for(total: usize) -> usize {
    total.saturating_sub(FREE_BYTES).div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_answers_are_free_and_large_ones_share_the_budget() {
        let b = AnswerBuffer::new(1 << 20);
        let small = b.reserve(FREE_BYTES, Duration::ZERO).await.unwrap();
        assert_eq!(b.in_use(), 0);
        let big = b
            .reserve(FREE_BYTES + (600 << 10), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(b.in_use(), 600 << 10);
        assert!(
            b.reserve(FREE_BYTES + (600 << 10), Duration::from_millis(1))
                .await
                .is_err()
        );
        let mut grown = BufferPermit::default();
        b.grow(&mut grown, FREE_BYTES + (424 << 10)).unwrap();
        assert_eq!(b.in_use(), 1 << 20);
        assert!(
            b.grow(&mut grown, FREE_BYTES + (425 << 10)).is_err(),
            "full"
        );
        drop((small, big));
        b.grow(&mut grown, FREE_BYTES + (1 << 20)).unwrap();
        assert_eq!(b.in_use(), 1 << 20);
        drop(grown);
        assert_eq!(b.in_use(), 0);
        assert!(
            b.reserve(FREE_BYTES + (2 << 20), Duration::from_secs(60))
                .await
                .is_err(),
            "larger than the whole budget: refused at once"
        );
    }

    #[tokio::test]
    async fn a_declared_answer_waits_for_room() {
        let b = AnswerBuffer::new(1 << 20);
        let first = b
            .reserve(FREE_BYTES + (1 << 20), Duration::ZERO)
            .await
            .unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move {
            b2.reserve(FREE_BYTES + (1 << 20), Duration::from_secs(60))
                .await
                .map(|_| ())
        });
        tokio::task::yield_now().await;
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
