//! F5's own published AWS declarations (`tests/corpus/cfe/`, sources in its SOURCES.md):
//! every one loads and plans on the in-memory seed cloud with the outcome SOURCES.md names,
//! but those it marks `rejected` (a route table named by its name: CFE matched no table),
//! which are refused when read, with the fix.

use failover_core::engine::discovery::discover_cloud;
use failover_core::engine::plan::plan;
use failover_core::memory::MemoryCloud;
use failover_core::Declaration;

use crate::support::{repo_file, ROOT};

/// The seed's standby unit: every plan is a failover to it.
const STANDBY: &str = "i-061cbb31a5158ad30";

/// One row of SOURCES.md: file, expected outcome (`ops`, `partial`, `ok`, `refused` or
/// `rejected`).
fn index() -> Vec<(String, String)> {
    repo_file("tests/corpus/cfe/SOURCES.md")
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let plan = cells.get(4)?;
            file.ends_with(".json")
                .then(|| (file.to_string(), plan.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn every_published_cfe_declaration_loads_and_plans() {
    let rows = index();
    let mut on_disk: Vec<String> = std::fs::read_dir(format!("{ROOT}/tests/corpus/cfe"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = rows.iter().map(|(f, _)| f.clone()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "SOURCES.md lists every corpus file once");
    assert!(rows.len() >= 42, "{} declarations", rows.len());

    let cloud = MemoryCloud::seed();
    let mut wrong = Vec::new();
    for (file, expect) in &rows {
        let text = repo_file(&format!("tests/corpus/cfe/{file}"));
        let decl = match (Declaration::parse(&text), expect.as_str()) {
            (Err(e), "rejected") if e.message.contains("is not a route table id") => continue,
            (Ok(_), "rejected") => {
                wrong.push(format!("{file}: loads, SOURCES.md says rejected"));
                continue;
            }
            (Ok(d), _) => d,
            (Err(e), _) => {
                wrong.push(format!("{file}: rejected: {e}"));
                continue;
            }
        };
        let snap = discover_cloud(&cloud, &decl, "cfe-state-bigip-ha")
            .await
            .unwrap_or_else(|e| panic!("{file}: discovery: {e}"));
        let got = match plan(&decl, &snap, STANDBY) {
            Ok(p) if !p.skipped.is_empty() => format!("partial ({})", p.skipped.join("; ")),
            Ok(p) if p.operations.is_empty() => "ok".to_string(),
            Ok(_) => "ops".to_string(),
            Err(r) => {
                assert!(!r.reasons.is_empty(), "{file}: a refusal gives its reasons");
                format!("refused ({r})")
            }
        };
        if got.split(' ').next() != Some(expect.as_str()) {
            wrong.push(format!("{file}: plan {got}, SOURCES.md says {expect}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
