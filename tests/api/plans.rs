//! Query plans of the hot reads on a database grown through the API.
//!
//! SQLite: with no ANALYZE after the growth (what a new deployment ran in
//! its first hour before the statistics refresh ran every minute): its
//! heuristics must already pick the right index, which the queries are
//! written for.
//!
//! PostgreSQL: RLS adds an `org_id` term to every table, so without any
//! statistics it picks blindly among the org-prefixed indexes (seen: a read
//! by id through the (org, entity) index). Its plans are taken after the
//! server's own statistics refresh (`Database::optimize`, every minute, on
//! top of autovacuum), and with sequential scans discouraged, since on a
//! test's few hundred rows they are rightly cheaper: the plan shows the index
//! each query uses.

use loci_core::model::Visibility;
use loci_core::{CategoryId, MemoryId, OrgId, UserId};
use loci_tests::{Engine, TestApp};
use serde_json::json;

async fn hot_reads_use_their_indexes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let mut last = String::new();
    for i in 0..300 {
        let metadata = if i % 10 == 0 { json!({ "categories": ["ops"] }) } else { json!({}) };
        last = alice.remember(&format!("alice's memory {i}"), metadata).await;
        if i % 3 == 0 {
            bob.remember(&format!("bob's memory {i}"), json!({ "categories": ["ops"] })).await;
        }
    }
    let (_, memory) = alice.get(&format!("/api/v1/memories/{last}")).await;
    let (_, categories) = alice.get("/api/v1/memories/categories").await;
    let user: UserId = memory["user_id"].as_str().unwrap().parse().unwrap();
    let category: CategoryId = categories["categories"][0]["id"].as_str().unwrap().parse().unwrap();
    let id: MemoryId = last.parse().unwrap();

    let db = &app.state.services.database;
    if engine == Engine::Postgres {
        db.optimize().await.unwrap();
    }
    let tx = db.begin_tenant_read(&OrgId::parse("acme").unwrap()).await.unwrap();
    // A token's grants always hold its own user, so the list has two arms.
    let vis = Visibility { user_id: user, grants: vec!["user:alice".parse().unwrap()] };
    let plans = loci_stores::repo::memories::hot_read_plans(&tx, &vis, id, category).await.unwrap();
    tx.commit().await.unwrap();
    let all: String = plans.iter().map(|(n, p)| format!("{n}:\n{p}\n")).collect();
    let plan = |name: &str| plans.iter().find(|(n, _)| *n == name).map(|(_, p)| p.clone()).unwrap();

    match engine {
        Engine::Sqlite => {
            assert!(plan("memory by id").contains("sqlite_autoindex_memories_1 (id=?)"), "{all}");
            // The link table by its primary key, never the org's whole (org, category, memory) index.
            let categories = plan("categories of a page");
            assert!(categories.contains("sqlite_autoindex_memory_categories_1 (memory_id=?)"), "{all}");
            assert!(!categories.contains("ix_memory_categories_org_category_memory"), "{all}");
            // The first page in index order: no sort of the user's memories.
            for name in ["list page", "list page after a cursor"] {
                let page = plan(name);
                assert!(page.contains("ix_memories_org_user_created_id (org_id=? AND user_id=?"), "{all}");
                assert!(!page.contains("TEMP B-TREE"), "{all}");
            }
            // The caller's own memories by state come from the stored counts.
            let count = plan("list count");
            assert!(count.contains("memory_counts") && !count.contains("ix_memories_org_user_created_id"), "{all}");
            // One category: its links in list order, then each memory by key;
            // the count never leaves the links' index.
            let count = plan("list count of one category");
            assert!(count.contains("COVERING INDEX ix_memory_categories_own_order"), "{all}");
            let by_category = plan("list page of one category");
            assert!(by_category.contains("COVERING INDEX ix_memory_categories_own_order"), "{all}");
            assert!(by_category.contains("ix_memory_categories_shared_order"), "{all}");
            assert!(by_category.contains("sqlite_autoindex_memories_1 (id=?)"), "{all}");
            assert!(!by_category.contains("SCAN memories") && !by_category.contains("ix_memories_org_"), "{all}");
        }
        Engine::Postgres => {
            for (name, p) in &plans {
                assert!(!p.contains("Seq Scan on memories"), "{name}: {all}");
            }
            assert!(
                plan("categories of a page").contains("memory_categories_pkey"),
                "{}",
                plan("categories of a page")
            );
            for name in ["list page", "list page after a cursor"] {
                let page = plan(name);
                // A merge append of the arms, each in index order; no sort node.
                assert!(page.contains("ix_memories_org_user_created_id") && !page.contains("Sort  ("), "{name}: {all}");
            }
            assert!(plan("list count").contains("memory_counts"), "{all}");
            // One category: the first links of each arm in list order (only
            // those few memories are sorted again).
            for name in ["list page of one category", "list count of one category"] {
                let p = plan(name);
                assert!(p.contains("ix_memory_categories_own_order"), "{name}: {all}");
                assert!(!p.contains("Seq Scan on memory_categories"), "{name}: {all}");
            }
        }
    }
}

loci_tests::on_both!(hot_reads_use_their_indexes);
