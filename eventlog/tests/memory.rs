//! The log contract on the in-memory backend (`kefu_eventlog::memory`), every item a log held
//! in one process can keep: all but durability across a killed process. "Reopening" it is a
//! new handle on the same memory, as reopening a file is a new connection to the same file.

mod contract;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use kefu_eventlog::Limits;
use kefu_eventlog::memory::MemoryLog;

/// The logs the tests made, by locator, so `open_at` can hand out another handle on one.
static LOGS: LazyLock<Mutex<HashMap<String, MemoryLog>>> = LazyLock::new(Default::default);

struct Memory {
    locator: String,
    log: Arc<MemoryLog>,
}

impl contract::Harness for Memory {
    type Log = MemoryLog;

    async fn fresh() -> Option<Self> {
        // The same limits the other backends' suites use.
        let log = MemoryLog::new()
            .with_limits(Limits {
                max_payload_bytes: 64 * 1024,
                max_batch: 1000,
            })
            .expect("limits");
        let locator = uuid::Uuid::now_v7().to_string();
        LOGS.lock()
            .expect("logs")
            .insert(locator.clone(), log.clone());
        Some(Memory {
            locator,
            log: Arc::new(log),
        })
    }

    fn log(&self) -> Arc<MemoryLog> {
        self.log.clone()
    }

    fn locator(&self) -> String {
        self.locator.clone()
    }

    async fn open_at(locator: &str) -> Arc<MemoryLog> {
        Arc::new(
            LOGS.lock()
                .expect("logs")
                .get(locator)
                .expect("a log this test binary made")
                .clone(),
        )
    }

    async fn cleanup(self) {
        LOGS.lock().expect("logs").remove(&self.locator);
    }
}

contract_suite_in_process!(Memory);
