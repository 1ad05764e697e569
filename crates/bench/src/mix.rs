//! A realistic day at the service centre, as CreateTicket requests: mostly repairs, then
//! complaints and enquiries; most by phone and app; in-unit faults with their unit,
//! common-area ones with a location; Chinese and English text, some with urgent words.
//!
//! Request `n` of a run is a pure function of `(run, n)`, so a run can be replayed.

use propdesk_proto::v1 as pb;

/// One property and the units tickets may name.
#[derive(Debug, Clone)]
pub struct Site {
    pub property_id: String,
    pub unit_ids: Vec<String>,
}

/// A weighted choice: the weights need not sum to anything in particular.
fn pick<T: Copy>(roll: u64, weighted: &[(T, u64)]) -> T {
    let total: u64 = weighted.iter().map(|(_, w)| w).sum();
    let mut at = roll % total.max(1);
    for (item, weight) in weighted {
        if at < *weight {
            return *item;
        }
        at -= weight;
    }
    weighted[0].0
}

/// SplitMix64: a good 64-bit mix, so consecutive `n` give unrelated choices.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Rolls(u64);

impl Rolls {
    fn next(&mut self) -> u64 {
        self.0 = mix64(self.0);
        self.0
    }
}

/// (category, in a unit, Chinese text, English text)
type Fault = (&'static str, bool, &'static str, &'static str);

const REPAIRS: &[(Fault, u64)] = &[
    (("plumbing", true, "厨房水龙头一直滴水，关不紧", "The kitchen tap keeps dripping"), 20),
    (("plumbing", true, "卫生间天花板漏水，楼上可能爆管", "Water leaking through the bathroom ceiling"), 3),
    (("water_supply", true, "家里突然停水了", "No water in the flat since this morning"), 6),
    (("electrical", true, "客厅插座没电，跳闸后合不上", "Living-room sockets dead, breaker trips"), 12),
    (("power_outage", true, "整户停电", "The whole flat has no power"), 4),
    (("door_lock", true, "入户门锁坏了，钥匙拧不动", "Front door lock jammed"), 6),
    (("intercom", false, "单元门禁刷卡没反应", "Entrance card reader not responding"), 6),
    (("lift", false, "电梯按钮失灵，停在12楼不动", "Lift stuck at floor 12, buttons dead"), 8),
    (("building_fabric", false, "楼道窗户玻璃裂了", "Cracked window pane on the stairwell"), 5),
    (("gas", true, "厨房有燃气味", "Smell of gas in the kitchen"), 1),
];

const COMPLAINTS: &[(Fault, u64)] = &[
    (("noise", false, "楼上装修太吵，晚上十点还在施工", "Renovation noise upstairs after 10 pm"), 10),
    (("rubbish", false, "垃圾桶满了两天没人清", "Bins overflowing for two days"), 8),
    (("clutter", false, "消防通道堆满杂物", "Fire escape blocked by clutter"), 5),
    (("pet_mess", false, "草坪上到处是狗粪", "Dog mess all over the lawn"), 4),
    (("parking", false, "车位被别人占了", "Someone parks in my space"), 6),
    (("stranger", false, "有陌生人在地下车库徘徊", "A stranger loitering in the car park"), 3),
    (("high_altitude_throwing", false, "有人从楼上扔东西", "Things thrown from a high window"), 2),
    (("fee_dispute", true, "物业费账单金额不对", "The service-fee bill is wrong"), 5),
    (("service_attitude", false, "前台工作人员态度不好", "Rude staff at the front desk"), 3),
    (("neighbour_dispute", true, "邻居在走廊放鞋柜", "Neighbour keeps a shoe cabinet in the corridor"), 3),
];

const ENQUIRIES: &[(Fault, u64)] = &[
    (("general_enquiry", false, "请问装修需要办什么手续？", "What do I need before renovating?"), 6),
    (("general_enquiry", false, "停车月卡怎么办理？", "How do I get a monthly parking pass?"), 4),
];

const COMMON_AREAS: &[&str] =
    &["1号楼大堂 lobby", "地下车库B2 car park", "3号楼电梯厅 lift hall", "中心花园 garden", "2单元楼道 stairwell"];

const NAMES: &[&str] = &["王女士", "李先生", "Mr Chen", "张阿姨", "Ms Liu", "赵先生"];

/// Builds the `n`th request of run `run` for one of `sites`.
pub fn ticket_request(sites: &[Site], run: u64, n: u64) -> pb::CreateTicketRequest {
    let mut roll = Rolls(mix64(run ^ n.rotate_left(17)));
    let kind = pick(
        roll.next(),
        &[
            (pb::TicketKind::Repair, 60),
            (pb::TicketKind::Complaint, 25),
            (pb::TicketKind::Enquiry, 8),
            (pb::TicketKind::Suggestion, 3),
            (pb::TicketKind::Assistance, 4),
        ],
    );
    let (category, in_unit, chinese, english) = match kind {
        pb::TicketKind::Repair => pick(roll.next(), REPAIRS),
        pb::TicketKind::Complaint => pick(roll.next(), COMPLAINTS),
        pb::TicketKind::Suggestion => ("suggestion", false, "建议小区增加充电桩", "Please add EV chargers"),
        pb::TicketKind::Assistance => ("assistance", true, "老人摔倒了需要帮忙", "An elderly resident needs help"),
        _ => pick(roll.next(), ENQUIRIES),
    };
    let site = &sites[(roll.next() % sites.len() as u64) as usize];
    // Most in-unit reports name the unit; some callers only say where they are.
    let unit_id = match (in_unit, site.unit_ids.is_empty(), roll.next() % 10) {
        (true, false, 0..=7) => site.unit_ids[(roll.next() % site.unit_ids.len() as u64) as usize].clone(),
        _ => String::new(),
    };
    let location = if unit_id.is_empty() {
        format!("{} #{}", COMMON_AREAS[(roll.next() % COMMON_AREAS.len() as u64) as usize], n % 97)
    } else {
        String::new()
    };
    let channel = pick(
        roll.next(),
        &[
            (pb::Channel::Phone, 45),
            (pb::Channel::App, 30),
            (pb::Channel::WalkIn, 15),
            (pb::Channel::HomeVisit, 5),
            (pb::Channel::Letter, 5),
        ],
    );
    let priority = pick(roll.next(), &[(pb::Priority::Unspecified, 85), (pb::Priority::P3, 10), (pb::Priority::P2, 5)]);
    let description = if roll.next().is_multiple_of(2) {
        format!("{chinese}。住户来电反映，请尽快处理。（{n}）")
    } else {
        format!("{english}. Reported by the resident, please send someone. ({n})")
    };
    let (reporter_name, reporter_phone) = if roll.next().is_multiple_of(3) {
        (NAMES[(roll.next() % NAMES.len() as u64) as usize].to_owned(), format!("139{:08}", roll.next() % 100_000_000))
    } else {
        (String::new(), String::new())
    };
    pb::CreateTicketRequest {
        request_id: format!("bench-{run:x}-{n}"),
        property_id: site.property_id.clone(),
        unit_id,
        location,
        reporter_name,
        reporter_phone,
        kind: kind as i32,
        channel: channel as i32,
        category: category.to_owned(),
        priority: priority as i32,
        title: String::new(),
        description,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> Vec<Site> {
        (0..3)
            .map(|p| Site { property_id: format!("p{p}"), unit_ids: (0..50).map(|u| format!("p{p}-u{u}")).collect() })
            .collect()
    }

    #[test]
    fn a_run_replays_exactly_and_differs_from_another_run() {
        let sites = sites();
        let first: Vec<_> = (0..50).map(|n| ticket_request(&sites, 7, n)).collect();
        let again: Vec<_> = (0..50).map(|n| ticket_request(&sites, 7, n)).collect();
        let other: Vec<_> = (0..50).map(|n| ticket_request(&sites, 8, n)).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn the_mix_covers_kinds_channels_units_and_both_languages() {
        let sites = sites();
        let requests: Vec<_> = (0..2_000).map(|n| ticket_request(&sites, 1, n)).collect();
        let share = |test: &dyn Fn(&pb::CreateTicketRequest) -> bool| {
            requests.iter().filter(|r| test(r)).count() as f64 / requests.len() as f64
        };
        let repairs = share(&|r| r.kind == pb::TicketKind::Repair as i32);
        assert!((0.5..0.7).contains(&repairs), "repairs {repairs}");
        assert!(share(&|r| r.kind == pb::TicketKind::Enquiry as i32) > 0.04);
        assert!(share(&|r| r.channel == pb::Channel::Letter as i32) > 0.02);
        let with_unit = share(&|r| !r.unit_id.is_empty());
        assert!((0.2..0.6).contains(&with_unit), "with unit {with_unit}");
        // Every request is valid in shape: a unit or a location, and a description.
        assert!(requests.iter().all(|r| !r.unit_id.is_empty() || !r.location.is_empty()));
        assert!(share(&|r| r.description.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))) > 0.3);
        assert!(share(&|r| r.description.contains("Reported by the resident")) > 0.3);
        let properties: std::collections::HashSet<_> = requests.iter().map(|r| r.property_id.as_str()).collect();
        assert_eq!(properties.len(), 3);
        let ids: std::collections::HashSet<_> = requests.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids.len(), requests.len());
    }
}
