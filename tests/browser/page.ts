// A desk page as a front-end team would write it: Connect's gRPC-Web transport and the
// TypeScript generated from proto/ by `buf generate`. It logs a ticket, follows it over
// WatchTickets until it is dispatched and a heartbeat arrives, and leaves what happened in
// `window.outcome` for the driver (run.mjs) to read.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Channel, TicketKind } from "./gen/propdesk/v1/common_pb.js";
import { TicketEventType, TicketService } from "./gen/propdesk/v1/tickets_pb.js";

type Outcome = {
  ticketId?: string;
  seen: string[];
  dispatchedTo?: string;
  heartbeatCursor?: string;
  error?: string;
};

declare global {
  interface Window {
    outcome?: Outcome;
  }
}

const params = new URLSearchParams(location.search);
const token = params.get("token") ?? "";
const withToken: Interceptor = (next) => async (request) => {
  request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};
const transport = createGrpcWebTransport({ baseUrl: params.get("intake") ?? "", interceptors: [withToken] });
const tickets = createClient(TicketService, transport);

async function run(): Promise<Outcome> {
  const outcome: Outcome = { seen: [] };
  const created = await tickets.createTicket({
    requestId: crypto.randomUUID(),
    propertyId: params.get("property") ?? "",
    location: "2号楼大堂",
    kind: TicketKind.REPAIR,
    channel: Channel.PHONE,
    category: "plumbing",
    description: "大堂卫生间水管漏水 (from the browser)",
  });
  outcome.ticketId = created.id;
  // Resume from the ticket's first event, as a desk reconnecting from its last cursor does.
  const history = await tickets.getTicketHistory({ ticketId: created.id, pageSize: 1 });
  const abort = new AbortController();
  const stream = tickets.watchTickets(
    { propertyId: created.propertyId, afterCursor: history.events[0]?.cursor ?? "" },
    { signal: abort.signal, timeoutMs: 30_000 },
  );
  for await (const event of stream) {
    if (event.type === TicketEventType.UNSPECIFIED) {
      // A heartbeat: it carries the cursor the stream stands at.
      if (outcome.dispatchedTo !== undefined) {
        outcome.heartbeatCursor = event.cursor;
        break;
      }
      continue;
    }
    if (event.ticketId !== created.id) continue;
    outcome.seen.push(TicketEventType[event.type]);
    if (event.type === TicketEventType.DISPATCHED) outcome.dispatchedTo = String(event.department);
  }
  abort.abort();
  return outcome;
}

run()
  .then((outcome) => (window.outcome = outcome))
  .catch((error: unknown) => (window.outcome = { seen: [], error: String(error) }));
