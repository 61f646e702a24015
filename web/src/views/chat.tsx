// The customer's chat widget: start a chat (optionally about an order), talk to the bot,
// ask for a person, wait in line, talk with the agent, rate the service.
import { useEffect, useState } from "preact/hooks";
import type { Client } from "../client";
import {
  AnswerSurvey,
  ConversationEvents,
  MyConversation,
  type MyConversationResult,
  MyConversations,
  RequestHuman,
  SendMessage,
  StartConversation,
} from "../gen/graphql";
import { type Lang, closeReasonLabel, duration, fill, statusLabel, words } from "../i18n";
import { Compose } from "./compose";
import { describe, time, useEvery, useQuery, useScrollToEnd, useSubscription } from "./live";

type View = MyConversationResult["myConversation"];

export function Chat(props: { client: Client; lang: Lang }) {
  const { client, lang } = props;
  const w = words[lang];
  // `since` is the position the start was written at: the first read waits for the read
  // model to reach it, or a fast first read finds no conversation and nothing asks again.
  const [conversation, setConversation] = useState<{ id: string; since?: string | null } | null>(null);
  const [resumed, setResumed] = useState(false);
  const [error, setError] = useState("");

  // A chat still open (or waiting for its rating) is resumed after a reload.
  useEffect(() => {
    client
      .run(MyConversations, {})
      .then((r) => {
        const open = r.myConversations.nodes.find((c) => c.status !== "CLOSED");
        if (open) setConversation({ id: open.uuid });
      })
      .catch((e: unknown) => setError(describe(e)))
      .finally(() => setResumed(true));
  }, []);

  if (!resumed) return null;
  return (
    <main class="widget card" data-testid="chat">
      <h2>{w.chatTitle}</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {conversation ? (
        <Window client={client} lang={lang} id={conversation.id} since={conversation.since} onNew={() => setConversation(null)} />
      ) : (
        <Start client={client} lang={lang} onStarted={setConversation} onError={setError} />
      )}
    </main>
  );
}

function Start(props: { client: Client; lang: Lang; onStarted: (c: { id: string; since?: string | null }) => void; onError: (e: string) => void }) {
  const w = words[props.lang];
  const [order, setOrder] = useState(new URLSearchParams(location.search).get("order") ?? "");
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="start"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        props.client
          .run(StartConversation, {
            channel: "WEB",
            orderId: order.trim() || null,
            locale: props.lang === "zh" ? "zh-CN" : "en",
            key: crypto.randomUUID(),
          })
          .then((r) => props.onStarted({ id: r.startConversation.id!, since: r.startConversation.position }))
          .catch((err: unknown) => props.onError(describe(err)))
          .finally(() => setBusy(false));
      }}
    >
      <label>
        {w.orderOptional}
        <input name="order" value={order} onInput={(e) => setOrder((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit" class="primary" disabled={busy} data-testid="start">
        {w.startChat}
      </button>
    </form>
  );
}

function Window(props: { client: Client; lang: Lang; id: string; since?: string | null; onNew: () => void }) {
  const { client, lang, id } = props;
  const w = words[lang];
  const view = useQuery(client, MyConversation, { id, atLeast: props.since ?? null }, [id]);
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const live = useSubscription(client, ConversationEvents, { conversationId: id }, (d) => view.reload(d.conversationEvents.position), [id]);
  const c = view.data?.myConversation;
  // The place in line moves when conversations ahead are served, which are not events of
  // this conversation; read it again while waiting.
  useEvery(3000, () => c?.status === "QUEUED" && view.reload(), [c?.status]);
  // A first read refused ("not reached position … try again") is asked again; no event may
  // come to prompt it while the customer waits for the bot.
  useEvery(3000, () => !c && view.error && view.reload(), [!!c, view.error]);

  const act = (p: Promise<{ position?: string | null } | unknown>) =>
    p.then(() => setError("")).catch((e: unknown) => setError(describe(e)));

  const say = (t: string) =>
    act(client.run(SendMessage, { conversationId: id, text: t, messageId: crypto.randomUUID() }).then((r) => view.reload(r.sendMessage.position)));

  if (!c) return <p class="muted">{view.error || live || "…"}</p>;
  const open = c.status !== "CLOSED";
  return (
    <div class="window">
      <div class={`status status-${c.status.toLowerCase()}`} data-testid="chat-status" data-status={c.status}>
        {statusLabel[lang][c.status]}
        {c.status === "CLOSED" && c.closeReason && ` · ${closeReasonLabel[lang][c.closeReason]}`}
      </div>
      <Transcript lang={lang} turns={c.turns} onChoose={c.status === "BOT" ? (choice) => say(choice) : undefined} />
      <Waiting lang={lang} c={c} />
      {(error || view.error || live) && <p class="error" role="alert">{error || view.error || live}</p>}
      {open && (
        <Compose name="message" placeholder={w.typeMessage} label={w.send} testid="send" primary value={text} onInput={setText} onSend={say}>
          {c.status === "BOT" && (
            <button type="button" data-testid="ask-human" onClick={() => act(client.run(RequestHuman, { conversationId: id }).then((r) => view.reload(r.requestHuman.position)))}>
              {w.askHuman}
            </button>
          )}
        </Compose>
      )}
      {!open && <Survey client={client} lang={lang} c={c} onNew={props.onNew} reload={view.reload} />}
    </div>
  );
}

/** A bot turn that offers choices: its first line, then `1. …` lines, one per question the
 * bot was unsure between (how kefu's bot words it when not confident enough to answer). */
export function choices(text: string): { prompt: string; options: string[] } | null {
  const [prompt, ...rest] = text.split("\n");
  const options = rest.map((l) => /^\d+\.\s*(.+)$/.exec(l.trim())?.[1]).filter((o): o is string => !!o);
  return options.length > 0 && options.length === rest.filter((l) => l.trim()).length ? { prompt, options } : null;
}

export function Transcript(props: { lang: Lang; turns: View["turns"]; onChoose?: (choice: string) => void }) {
  const w = words[props.lang];
  const who = { CUSTOMER: w.you, BOT: w.bot, AGENT: w.agent };
  const end = useScrollToEnd<HTMLOListElement>(props.turns.length);
  return (
    <ol class="transcript" data-testid="transcript" ref={end}>
      {props.turns.map((t) => {
        const offered = t.speaker === "BOT" ? choices(t.text) : null;
        return (
          <li key={t.message} class={`turn turn-${t.speaker.toLowerCase()}`} data-speaker={t.speaker}>
            <span class="meta">
              {who[t.speaker]} · {time(t.at, props.lang)}
            </span>
            {offered ? (
              <span class="bubble">
                {offered.prompt}
                <span class="choices">
                  {offered.options.map((o) => (
                    <button key={o} class="choice" data-testid="choice" disabled={!props.onChoose} onClick={() => props.onChoose?.(o)}>
                      {o}
                    </button>
                  ))}
                </span>
              </span>
            ) : (
              <span class="bubble">{t.text}</span>
            )}
          </li>
        );
      })}
    </ol>
  );
}

export function Waiting(props: { lang: Lang; c: View }) {
  const w = words[props.lang];
  const { c } = props;
  if (c.status === "AWAITING_HUMAN") return <p class="banner">{w.waitingForHuman}</p>;
  if (c.status !== "QUEUED") return null;
  return (
    <p class="banner" data-testid="place-in-line">
      {c.placeInLine != null && fill(w.placeInLine, { n: c.placeInLine })}
      {" · "}
      {c.expectedWaitSecs != null ? fill(w.expectedWait, { t: duration(props.lang, c.expectedWaitSecs) }) : w.noAgentOnline}
    </p>
  );
}

function Survey(props: { client: Client; lang: Lang; c: View; onNew: () => void; reload: (p?: string | null) => void }) {
  const { client, lang, c } = props;
  const w = words[lang];
  const [score, setScore] = useState(0);
  const [comment, setComment] = useState("");
  const [error, setError] = useState("");
  if (c.survey.score != null) {
    return (
      <div class="survey">
        <p data-testid="survey-thanks">
          {w.surveyThanks} {"★".repeat(c.survey.score)}
        </p>
        <button class="primary" onClick={props.onNew}>
          {w.newChat}
        </button>
      </div>
    );
  }
  if (!c.survey.offered) {
    return (
      <div class="survey">
        <p>{w.closed}</p>
        <button onClick={props.onNew}>{w.newChat}</button>
      </div>
    );
  }
  return (
    <form
      class="survey"
      data-testid="survey"
      onSubmit={(e) => {
        e.preventDefault();
        if (!score) return;
        client
          .run(AnswerSurvey, { conversationId: c.uuid, score, comment: comment.trim() || null })
          .then((r) => props.reload(r.answerSurvey.position))
          .catch((err: unknown) => setError(describe(err)));
      }}
    >
      <p>{w.surveyAsk}</p>
      <div class="stars" role="radiogroup">
        {[1, 2, 3, 4, 5].map((n) => (
          <button type="button" key={n} role="radio" aria-checked={score === n} class={n <= score ? "star on" : "star"} data-testid={`star-${n}`} onClick={() => setScore(n)}>
            ★
          </button>
        ))}
      </div>
      <input name="comment" placeholder={w.surveyComment} value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" class="primary" disabled={!score} data-testid="survey-submit">
        {w.surveySubmit}
      </button>
    </form>
  );
}
