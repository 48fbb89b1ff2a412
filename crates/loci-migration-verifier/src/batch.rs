//! Batch plans for long copies.

/// A table of `rows` rows copied `batch` rows at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    pub rows: u64,
    pub batch: u64,
}

impl BatchPlan {
    /// The default batch: 1,000 rows.
    pub const DEFAULT_BATCH: u64 = 1000;

    /// A plan; a batch of 0 is taken as 1.
    pub fn new(rows: u64, batch: u64) -> Self {
        Self { rows, batch: batch.max(1) }
    }

    /// How many batches the copy takes: ceil(rows / batch).
    pub fn batches(&self) -> u64 {
        self.rows.div_ceil(self.batch)
    }

    /// The batch (1-based) that the row after `done` rows belongs to.
    pub fn batch_after(&self, done: u64) -> u64 {
        (done / self.batch + 1).min(self.batches().max(1))
    }

    /// "batch n of m" for the batch that starts after `done` rows.
    pub fn describe(&self, done: u64) -> String {
        format!("batch {} of {}", self.batch_after(done), self.batches())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_up() {
        assert_eq!(BatchPlan::new(0, 1000).batches(), 0);
        assert_eq!(BatchPlan::new(1, 1000).batches(), 1);
        assert_eq!(BatchPlan::new(1000, 1000).batches(), 1);
        assert_eq!(BatchPlan::new(1001, 1000).batches(), 2);
        assert_eq!(BatchPlan::new(5, 0).batches(), 5);
        let plan = BatchPlan::new(2500, 1000);
        assert_eq!(plan.describe(0), "batch 1 of 3");
        assert_eq!(plan.describe(1000), "batch 2 of 3");
        assert_eq!(plan.describe(2500), "batch 3 of 3");
    }
}
