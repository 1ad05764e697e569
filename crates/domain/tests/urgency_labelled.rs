//! The default urgent-word rules over a labelled set of residents' reports
//! (`tests/data/urgency.tsv`): precision and recall of P1, printed and held to 0.95.

use propdesk_domain::{Priority, UrgencyRules};

const LABELLED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/urgency.tsv"));

#[test]
fn the_default_rules_find_p1_reports_with_precision_and_recall_of_at_least_0_95() {
    let rules = UrgencyRules::default();
    let (mut true_p1, mut false_p1, mut missed, mut count) = (0u32, 0u32, 0u32, 0u32);
    let mut wrong = Vec::new();
    for line in LABELLED.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (label, text) = line.split_once('\t').unwrap_or_else(|| panic!("no tab in {line:?}"));
        let is_p1 = match label {
            "P1" => true,
            "--" => false,
            other => panic!("unknown label {other:?} in {line:?}"),
        };
        count += 1;
        let decided = rules.decide(Priority::P3, None, text);
        let said_p1 = decided.priority == Priority::P1;
        match (is_p1, said_p1) {
            (true, true) => true_p1 += 1,
            (false, true) => false_p1 += 1,
            (true, false) => missed += 1,
            (false, false) => {}
        }
        if is_p1 != said_p1 {
            wrong.push(format!("{label} {text} (rule {:?})", decided.raised_by.map(|r| r.keyword)));
        }
    }
    let precision = f64::from(true_p1) / f64::from(true_p1 + false_p1);
    let recall = f64::from(true_p1) / f64::from(true_p1 + missed);
    println!("urgency over {count} labelled reports: P1 precision {precision:.3}, recall {recall:.3}");
    for line in &wrong {
        println!("  misread: {line}");
    }
    assert!(count >= 150, "the labelled set has {count} reports");
    assert!(precision >= 0.95 && recall >= 0.95, "precision {precision:.3}, recall {recall:.3}: {wrong:#?}");
}

#[test]
fn a_guard_losing_his_temper_is_not_a_fire_and_a_burst_kitchen_pipe_is_p1() {
    let rules = UrgencyRules::default();
    assert_eq!(rules.decide(Priority::P3, None, "保安对我发火").priority, Priority::P3);
    assert_eq!(rules.decide(Priority::P3, None, "厨房水管爆了").priority, Priority::P1);
}
