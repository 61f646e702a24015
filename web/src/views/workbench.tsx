// The agent's workbench: status, the chats assigned to them (live), one chat's transcript
// with notes, and beside it what the desk knows: order, triage, mood, the knowledge base.
import { useState } from "preact/hooks";
import type { Client } from "../client";
import {
  AddNote,
  type AgentStatus,
  CloseConversation,
  ConversationEvents,
  DeskConversation,
  type DeskConversationResult,
  KnowledgeSuggestions,
  OpenTicket,
  type TicketKind,
  TicketKindValues,
  QueueChanges,
  Queues,
  SendMessage,
  SetAgentStatus,
  TransferToAgent,
  TransferToQueue,
  Workbench as WorkbenchQuery,
} from "../gen/graphql";
import {
  type Lang,
  ticketKindLabel,
  agentStatusLabel,
  emotionLabel,
  fill,
  handoffLabel,
  orderStatusLabel,
  speakerLabel,
  statusLabel,
  trendLabel,
  words,
} from "../i18n";
import { Compose } from "./compose";
import { describe, time, useQuery, useScrollToEnd, useSubscription } from "./live";

type Conversation = DeskConversationResult["conversation"];

export function Workbench(props: { client: Client; lang: Lang }) {
  const { client, lang } = props;
  const w = words[lang];
  const bench = useQuery(client, WorkbenchQuery, {}, []);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState("");
  // Assignments arrive as changes of the queues the agent serves; the workbench is read
  // again at their position.
  const served = useQuery(client, Queues, {}, []);
  const queueIds = served.data?.queues.nodes.map((q) => q.uuid) ?? null;
  const live = useSubscription(client, QueueChanges, queueIds && { queues: queueIds }, (d) => bench.reload(d.queueChanges.position), [queueIds?.join()]);
  const b = bench.data?.workbench;

  const setStatus = (status: AgentStatus) =>
    client
      .run(SetAgentStatus, { status })
      .then((r) => bench.reload(r.setAgentStatus.position))
      .catch((e: unknown) => setError(describe(e)));

  return (
    <main class="workbench">
      <aside class="chats card">
        <h2>{w.workbench}</h2>
        {b && (
          <div class="presence" data-testid="presence" data-status={b.agent.status}>
            <span class={`dot dot-${b.agent.status.toLowerCase()}`} /> {b.agent.name} · {agentStatusLabel[lang][b.agent.status]}
            <div class="segmented">
              {(["ONLINE", "AWAY", "OFFLINE"] as const).map((s) => (
                <button key={s} class={b.agent.status === s ? "on" : ""} data-testid={`status-${s.toLowerCase()}`} onClick={() => setStatus(s)}>
                  {s === "ONLINE" ? w.online : s === "AWAY" ? w.away : w.offline}
                </button>
              ))}
            </div>
            <small class="muted">{fill(w.freeSeats, { n: b.freeSeats })}</small>
          </div>
        )}
        {(error || bench.error || served.error || live) && <p class="error" role="alert">{error || bench.error || served.error || live}</p>}
        <h3>{w.chats}</h3>
        {b && b.chats.length === 0 && <p class="muted">{w.noChats}</p>}
        <ul class="chat-list" data-testid="chat-list">
          {b?.chats.map((c) => (
            <li key={c.conversation}>
              <button class={selected === c.conversation ? "chat-item on" : "chat-item"} data-conversation={c.conversation} onClick={() => setSelected(c.conversation)}>
                <span>{c.conversation.slice(-8)}</span>
                <small class="muted">
                  {c.queue.slice(-6)} · {time(c.since, lang)}
                </small>
              </button>
            </li>
          ))}
        </ul>
      </aside>
      {selected ? <ChatPane key={selected} client={client} lang={lang} id={selected} onChanged={bench.reload} /> : <section class="card pane muted">{w.selectChat}</section>}
    </main>
  );
}

function ChatPane(props: { client: Client; lang: Lang; id: string; onChanged: (position?: string | null) => void }) {
  const { client, lang, id } = props;
  const w = words[lang];
  const view = useQuery(client, DeskConversation, { id }, [id]);
  // A close or transfer frees the agent's seat without a queue change; the workbench is
  // read again with the conversation.
  const changed = (position?: string | null) => {
    view.reload(position);
    props.onChanged(position);
  };
  const live = useSubscription(client, ConversationEvents, { conversationId: id }, (d) => changed(d.conversationEvents.position), [id]);
  const [reply, setReply] = useState("");
  const [note, setNote] = useState("");
  const [transferReason, setTransferReason] = useState("");
  // Where a transfer goes: "" back to the chat's queue, or a colleague's id.
  const [transferTo, setTransferTo] = useState("");
  const [error, setError] = useState("");
  const c = view.data?.conversation;
  const end = useScrollToEnd<HTMLOListElement>(c?.turns.length ?? 0);

  const act = (p: Promise<string | null | undefined>) =>
    p.then((position) => {
      setError("");
      changed(position);
    }).catch((e: unknown) => setError(describe(e)));

  if (!c) return <section class="card pane muted">{view.error || live || "…"}</section>;
  const open = c.status !== "CLOSED";
  return (
    <>
      <section class="card pane" data-testid="conversation" data-status={c.status}>
        <header class="pane-head">
          <strong>{c.uuid.slice(-8)}</strong>
          <span class={`tag status-${c.status.toLowerCase()}`}>{statusLabel[lang][c.status]}</span>
          {c.sla && (
            <span class={c.sla.firstResponseBreached ? "tag bad" : c.sla.firstResponseWarned ? "tag warn" : "tag"}>
              {c.sla.firstResponseBreached ? w.slaBreached : c.sla.firstResponseDue && !c.sla.responded ? fill(w.slaDue, { t: time(c.sla.firstResponseDue, lang) }) : "SLA ✓"}
            </span>
          )}
          <span class="spacer" />
          {open && (
            <button data-testid="close" onClick={() => act(client.run(CloseConversation, { conversationId: id, reason: "RESOLVED" }).then((r) => r.closeConversation.position))}>
              {w.closeChat}
            </button>
          )}
        </header>
        <ol class="transcript" data-testid="desk-transcript" ref={end}>
          {c.turns.map((t) => (
            <li key={t.message} class={t.internal ? "turn turn-note" : `turn turn-${t.speaker.toLowerCase()}`} data-speaker={t.speaker} data-internal={t.internal}>
              <span class="meta">
                {t.internal ? w.internal : speakerLabel[lang][t.speaker]} · {time(t.at, lang)}
                {t.emotion && ` · ${emotionLabel[lang][t.emotion.label]}`}
                {t.confidence != null && ` · ${Math.round(t.confidence * 100)}%`}
              </span>
              <span class="bubble">{t.text}</span>
            </li>
          ))}
        </ol>
        {(error || view.error || live) && <p class="error" role="alert">{error || view.error || live}</p>}
        {open && (
          <div class="composers">
            <Compose
              name="reply"
              placeholder={w.reply}
              label={w.send}
              testid="send-reply"
              primary
              value={reply}
              onInput={setReply}
              onSend={(t) => act(client.run(SendMessage, { conversationId: id, text: t, messageId: crypto.randomUUID() }).then((r) => r.sendMessage.position))}
            />
            <Compose
              name="note"
              kind="note"
              placeholder={w.note}
              label={w.addNote}
              testid="add-note"
              value={note}
              onInput={setNote}
              onSend={(t) => act(client.run(AddNote, { conversationId: id, text: t }).then((r) => r.addNote.position))}
            />
            {c.queue && (
              <Compose
                name="transfer-reason"
                kind="transfer"
                placeholder={w.transferReason}
                label={w.transfer}
                testid="transfer"
                value={transferReason}
                onInput={setTransferReason}
                onSend={(reason) => {
                  const to = c.colleagues.some((a) => a.uuid === transferTo) ? transferTo : "";
                  setTransferTo("");
                  act(
                    (to
                      ? client.run(TransferToAgent, { conversationId: id, agent: to, reason })
                      : client.run(TransferToQueue, { conversationId: id, queue: c.queue!, reason })
                    ).then((r) => r.transferConversation.position),
                  );
                }}
              >
                <select name="transfer-to" aria-label={w.transferTarget} value={transferTo} onChange={(e) => setTransferTo((e.target as HTMLSelectElement).value)}>
                  <option value="">{w.backToQueue}</option>
                  {c.colleagues.map((a) => (
                    <option key={a.uuid} value={a.uuid}>
                      {fill(w.colleague, { name: a.name, n: String(a.freeSeats) })}
                    </option>
                  ))}
                </select>
              </Compose>
            )}
          </div>
        )}
        <TicketForm client={client} lang={lang} c={c} />
      </section>
      <Context client={client} lang={lang} c={c} onUse={setReply} />
    </>
  );
}

/** What the desk knows about the chat: the order, triage's guess, the mood, and the
 * knowledge base's entries for the customer's last message. */
function Context(props: { client: Client; lang: Lang; c: Conversation; onUse: (text: string) => void }) {
  const { client, lang, c } = props;
  const w = words[lang];
  const prediction = [...c.timeline].reverse().find((t) => t.kind === "SCENARIO_PREDICTED")?.scenario;
  // The order's status as the chat began (what the customer is asking about).
  const orderStatus = c.timeline.find((t) => t.kind === "CONVERSATION_STARTED")?.orderStatus;
  const lastTurn = [...c.turns].reverse().find((t) => t.speaker === "CUSTOMER" && !t.internal);
  const last = lastTurn?.text ?? "";
  // The bot's own suggestions for the turn, with its confidence, once it has made them; a
  // full-text search of the knowledge base until then (or when the bot found nothing).
  const bot = lastTurn?.suggested ?? null;
  const suggestions = useQuery(client, KnowledgeSuggestions, last && !bot ? { text: last } : null, [last, !!bot]);
  return (
    <aside class="card context" data-testid="context">
      <h3>{w.customer}</h3>
      <dl>
        <dt>{w.tier}</dt>
        <dd>{c.tier}</dd>
        <dt>{w.channel}</dt>
        <dd>{c.channel}</dd>
      </dl>
      <h3>{w.orderContext}</h3>
      <dl data-testid="order">
        <dt>{w.order}</dt>
        <dd>{c.orderId ?? "—"}</dd>
        <dt>{w.orderStatus}</dt>
        <dd data-testid="order-status" data-status={orderStatus ?? ""}>
          {orderStatus ? orderStatusLabel[lang][orderStatus] : "—"}
        </dd>
        <dt>{w.seller}</dt>
        <dd>{c.seller ?? "—"}</dd>
        <dt>{w.category}</dt>
        <dd>{c.category ?? "—"}</dd>
        <dt>{w.ordersAttributed}</dt>
        <dd>{c.orders}</dd>
      </dl>
      <h3>{w.triage}</h3>
      <dl data-testid="triage">
        <dt>{w.scenario}</dt>
        <dd>{c.scenarioSettled ?? c.scenarioPredicted ?? "—"}</dd>
        {prediction?.candidates.slice(0, 3).map((s) => (
          <dd key={s.scenario} class="candidate" style={{ background: `linear-gradient(to right, #e6eefc ${Math.round(s.probability * 100)}%, transparent 0)` }}>
            {s.scenario} {Math.round(s.probability * 100)}%
          </dd>
        ))}
        <dt>{w.handoff}</dt>
        <dd>{c.handoffReason ? handoffLabel[lang][c.handoffReason] : "—"}</dd>
      </dl>
      <h3>{w.mood}</h3>
      <div data-testid="mood">
        {c.emotionLabel ? `${emotionLabel[lang][c.emotionLabel]}` : "—"}
        {c.emotionTrend && ` · ${w.moodTrend}: ${trendLabel[lang][c.emotionTrend]}`}
        <Sparkline values={c.emotions.map((e) => e.score)} />
      </div>
      <h3>
        {bot ? w.botSuggests : w.suggestions}
        {bot && (
          <small class="muted" data-testid="suggestion-confidence" data-confidence={bot.confidence.toFixed(2)}>
            {" "}
            · {w.confidence} {Math.round(bot.confidence * 100)}%
          </small>
        )}
      </h3>
      <ul class="suggestions" data-testid="suggestions" data-source={bot ? "bot" : "search"}>
        {bot?.answers.map((a) => (
          <li key={a.entry} title={a.question}>
            <span>
              <b>{a.question}</b> {a.answer}
            </span>
            <small class="muted">{a.score.toFixed(2)}</small>
            <button onClick={() => props.onUse(a.answer)}>{w.useSuggestion}</button>
          </li>
        ))}
        {!bot && suggestions.data?.search.nodes.length === 0 && <li class="muted">{w.noSuggestions}</li>}
        {!bot && suggestions.data?.search.nodes.map((s, i) => {
          const plain = s.snippet.replace(/<\/?b>/g, "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");
          return (
            <li key={s.entry ?? i}>
              <span>{plain}</span>
              <small class="muted">{s.score != null ? s.score.toFixed(2) : ""}</small>
              <button onClick={() => props.onUse(plain)}>{w.useSuggestion}</button>
            </li>
          );
        })}
      </ul>
    </aside>
  );
}

/** The mood per customer turn, -1 (angry) to 1 (pleased). */
function Sparkline(props: { values: number[] }) {
  const v = props.values;
  if (v.length === 0) return null;
  const width = 160;
  const height = 36;
  const x = (i: number) => (v.length === 1 ? width / 2 : (i * width) / (v.length - 1));
  const y = (s: number) => ((1 - s) / 2) * height;
  const points = v.map((s, i) => `${x(i).toFixed(1)},${y(s).toFixed(1)}`).join(" ");
  return (
    <svg class="sparkline" viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img">
      <line x1="0" x2={width} y1={height / 2} y2={height / 2} class="axis" />
      <polyline points={points} />
      {v.map((s, i) => (
        <circle key={i} cx={x(i)} cy={y(s)} r="2.5" />
      ))}
    </svg>
  );
}

/** Opens a ticket from the chat, for what cannot be settled in it (a refund, a return). */
function TicketForm(props: { client: Client; lang: Lang; c: Conversation }) {
  const { client, lang, c } = props;
  const w = words[lang];
  const [kind, setKind] = useState<TicketKind>("OTHER");
  const [subject, setSubject] = useState("");
  const [opened, setOpened] = useState<string | null>(null);
  const [error, setError] = useState("");
  if (opened) {
    return (
      <p class="banner" data-testid="ticket-opened">
        {fill(w.ticketOpened, { id: opened.slice(-8) })}
      </p>
    );
  }
  return (
    <form
      class="compose ticket"
      onSubmit={(e) => {
        e.preventDefault();
        const t = subject.trim();
        if (!t) return;
        client
          .run(OpenTicket, {
            input: { customer: c.customer, conversationId: c.uuid, kind, subject: t, description: t, orderId: c.orderId },
          })
          .then((r) => setOpened(r.openTicket.id ?? ""))
          .catch((err: unknown) => setError(describe(err)));
      }}
    >
      <select name="kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as TicketKind)}>
        {TicketKindValues.map((k) => (
          <option key={k} value={k}>
            {ticketKindLabel[lang][k]}
          </option>
        ))}
      </select>
      <input name="ticket-subject" placeholder={w.ticketSubject} value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} autocomplete="off" />
      <button type="submit" data-testid="open-ticket">
        {w.openTicket}
      </button>
      {error && <span class="error" role="alert">{error}</span>}
    </form>
  );
}
