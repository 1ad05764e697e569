//! The benchmark's results: every figure with its ceiling, the ratio to it, and its
//! target; written as JSON and as a Markdown table.

use serde::Serialize;

/// A target a figure must meet.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Target::AtLeast(bound) => format!("≥ {} {unit}", number(bound)),
            Target::AtMost(bound) => format!("≤ {} {unit}", number(bound)),
        }
    }
}

/// What a figure is compared with: a ceiling measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable key for tools reading the JSON, e.g. `intake.create_ticket.sustained`.
    pub key: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub ceiling: Option<Ceiling>,
    /// `value / ceiling`.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    pub met: Option<bool>,
    /// How it was measured.
    pub how: String,
}

impl Figure {
    pub fn new(key: &str, name: &str, value: f64, unit: &str, how: impl Into<String>) -> Figure {
        Figure {
            key: key.to_owned(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            ceiling: None,
            ratio: None,
            target: None,
            met: None,
            how: how.into(),
        }
    }

    pub fn against(mut self, ceiling_name: &str, ceiling: f64) -> Figure {
        self.ratio = (ceiling > 0.0).then(|| self.value / ceiling);
        self.ceiling = Some(Ceiling { name: ceiling_name.to_owned(), value: ceiling });
        self
    }

    pub fn target(mut self, target: Target) -> Figure {
        self.met = Some(target.met(self.value));
        self.target = Some(target);
        self
    }
}

/// The machine the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub postgres: String,
    pub rabbitmq: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub took_seconds: f64,
    pub machine: Machine,
    /// Callers of the closed-loop runs and pgbench clients.
    pub concurrency: usize,
    pub figures: Vec<Figure>,
    /// Process logs and anything else worth a look.
    pub notes: Vec<String>,
}

/// Thousands separated, sensible decimals for the size of the number.
pub fn number(value: f64) -> String {
    let decimals = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |d| ("-", d));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# propdesk benchmark\n\n");
        out.push_str(&format!(
            "Run {} ({:.0} s) on {} cores, {:.0} GiB; {}; RabbitMQ {}; concurrency {}.\n\n",
            self.started_at,
            self.took_seconds,
            self.machine.cores,
            self.machine.memory_gib,
            self.machine.postgres,
            self.machine.rabbitmq,
            self.concurrency
        ));
        out.push_str(&self.table());
        out.push_str("\n## How each figure was measured\n\n");
        for figure in &self.figures {
            out.push_str(&format!("- **{}**: {}\n", figure.name, figure.how));
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }

    /// The results table alone, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| Figure | Value | Ceiling | Ratio | Target | Met |\n|---|---:|---|---:|---|:---:|\n");
        for f in &self.figures {
            let ceiling =
                f.ceiling.as_ref().map(|c| format!("{} {}", c.name, number(c.value))).unwrap_or_else(|| "—".into());
            let ratio = f.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "—".into());
            let target = f.target.map(|t| t.text(&f.unit)).unwrap_or_else(|| "—".into());
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} {} | {ceiling} | {ratio} | {target} | {met} |\n",
                f.name,
                number(f.value),
                f.unit
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded_by_size() {
        assert_eq!(number(3399.8), "3,400");
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.456), "0.46");
        assert_eq!(number(-1500.0), "-1,500");
    }

    #[test]
    fn a_figure_knows_its_ratio_and_whether_it_met_its_target() {
        let figure = Figure::new("intake.sustained", "CreateTicket sustained", 2100.0, "tickets/s", "closed loop")
            .against("pgbench", 3500.0)
            .target(Target::AtLeast(2000.0));
        assert_eq!(figure.ratio, Some(0.6));
        assert_eq!(figure.met, Some(true));
        let late = Figure::new("time.p99", "lateness p99", 1500.0, "ms", "alarms").target(Target::AtMost(1000.0));
        assert_eq!(late.met, Some(false));
        let report = Report {
            started_at: "now".into(),
            took_seconds: 1.0,
            machine: Machine { cores: 2, memory_gib: 24.0, postgres: "PostgreSQL 15".into(), rabbitmq: "4".into() },
            concurrency: 32,
            figures: vec![figure, late],
            notes: vec![],
        };
        let table = report.table();
        assert!(
            table.contains(
                "| CreateTicket sustained | 2,100 tickets/s | pgbench 3,500 | 0.60 | ≥ 2,000 tickets/s | yes |"
            )
        );
        assert!(table.contains("| **no** |"));
        assert!(report.markdown().contains("- **lateness p99**: alarms"));
    }
}
