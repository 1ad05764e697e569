-- The database ceiling for CreateTicket: the statements one CreateTicket sends, with the
-- same round trips, as pgbench runs them (see crates/store/src/tickets.rs, create_tickets):
--   1. the property lookup (new ids are drawn here, in the same round trip),
--   2. the request-id lookup (idempotency),
--   3. one statement: the ticket row (with its phone key), and as data-modifying WITH parts
--      its entry in the search index, its CREATED event and the event's outbox message,
--      each kept only if the ticket was written.
-- Variables: -D property=<id> -D agent=<staff id>. Run with -M prepared, as sqlx does.
SELECT id, name, gen_random_uuid()::text AS tid, gen_random_uuid()::text AS eid, gen_random_uuid()::text AS mid FROM properties WHERE id = :property \gset
SELECT * FROM tickets WHERE first_contact_agent_id = :agent AND request_id = :tid LIMIT 1;
WITH created AS (
INSERT INTO tickets (id, version, property_id, building_id, unit_id, unit_label, location, resident_id, reporter_name, reporter_phone, kind, channel, category, department, priority, state, held_from, title, description, first_contact_agent_id, assignee_id, escalation_level, incident_id, repeat_fault, request_id, request_fingerprint, created_at, updated_at, dispatched_at, accepted_at, on_site_at, resolved_at, closed_at, on_hold_since, acknowledge_by, on_site_by, resolve_by, first_reply_by, callback_by, promised_reply_at, callback_satisfaction, callback_comment, callback_recorded_by, callback_recorded_at, is_incident, clock_cycle, reporter_phone_key)
  VALUES (:tid, 1, :property, NULL, NULL, NULL, '3号楼电梯厅 lift hall', NULL, '王女士', '13912345678', 'repair', 'phone', 'lift', NULL, 'p2', 'new', NULL, '电梯按钮失灵，停在12楼不动', '电梯按钮失灵，停在12楼不动。住户来电反映，请尽快处理。', :agent, NULL, 0, NULL, false, :tid, 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', now(), now(), NULL, NULL, NULL, NULL, NULL, NULL, now() + interval '30 minutes', now() + interval '2 hours', now() + interval '1 day', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, 0, '13912345678')
  ON CONFLICT (first_contact_agent_id, request_id) DO NOTHING
  RETURNING id
), indexed AS (
INSERT INTO ticket_search (ticket_id, document)
  SELECT v.column2, to_tsvector('simple', v.column3)
  FROM (VALUES (:tid, :tid, '电 梯 按 钮 失 灵 停 在 12 楼 不 动 电梯 梯按 按钮 钮失 失灵 灵停 停在 楼不 不动 电 梯 按 钮 失 灵 停 在 12 楼 不 动 住 户 来 电 反 映 请 尽 快 处 理 电梯 梯按 按钮 钮失 失灵 灵停 停在 楼不 不动 住户 户来 来电 电反 反映 请尽 尽快 快处 处理 3 号 楼 电 梯 厅 号楼 楼电 电梯 梯厅 lift hall')) AS v
  WHERE v.column1 IN (SELECT id FROM created)
), events AS (
INSERT INTO ticket_events (event_id, ticket_id, event_type, actor_id, actor_role, from_state, to_state, note, occurred_at, ticket_version, property_id, department, assignee_id, priority)
  SELECT v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, v.column10, v.column11, v.column12, v.column13, v.column14, v.column15
  FROM (VALUES (:tid, :eid, :tid, 'created', :agent, 'agent', NULL, 'new', 'priority P2', now(), 1, :property, NULL, NULL, 'p2')) AS v
  WHERE v.column1 IN (SELECT id FROM created)
), sent AS (
INSERT INTO outbox (message_id, routing_key, payload, created_at, attempts, claim_token, claimed_until, trace_parent)
  SELECT v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9
  FROM (VALUES (:tid, :mid, 'ticket.created', decode(repeat('0a', 480), 'hex'), now(), 0, NULL, NULL::timestamptz, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')) AS v
  WHERE v.column1 IN (SELECT id FROM created)
)
SELECT id FROM created;
