// The supervisor's dashboard: the queues live, and today's service figures as charts.
import { useRef, useState } from "preact/hooks";
import type { Client } from "../client";
import { Dashboard as DashboardQuery, type DashboardResult, type HandoffReason, HandoffReasonValues, QueueChanges, Queues, type Role } from "../gen/graphql";
import { type Lang, duration, handoffLabel, words } from "../i18n";
import { time, useEvery, useQuery, useSubscription } from "./live";

function startOfToday(): string {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

export function Dashboard(props: { client: Client; lang: Lang; role: Role; queues: string[] }) {
  const { client, lang } = props;
  const w = words[lang];
  // A supervisor's figures are per queue (one of those their token names); admins and
  // analysts see the whole floor.
  const [scope, setScope] = useState<string | null>(props.role === "SUPERVISOR" ? (props.queues[0] ?? null) : null);
  const queues = useQuery(client, Queues, {}, []);
  const figures = useQuery(client, DashboardQuery, { from: startOfToday(), offset: -new Date().getTimezoneOffset(), queue: scope }, [scope]);
  // Statistics change with every conversation; at most one read a second keeps a busy
  // floor from turning each event into a query.
  const lastStats = useRef(0);
  // Only supervisors may follow queues; admins' and analysts' figures follow the timer.
  const live = useSubscription(
    client,
    QueueChanges,
    props.role === "SUPERVISOR" ? {} : null,
    (d) => {
      queues.reload(d.queueChanges.position);
      if (Date.now() - lastStats.current > 1000) {
        lastStats.current = Date.now();
        figures.reload();
      }
    },
    [],
  );
  // Waits grow with the clock, not with events.
  useEvery(5000, () => {
    queues.reload();
    figures.reload();
  }, []);

  const q = queues.data?.queues.nodes ?? [];
  const f = figures.data;
  const total = f?.total[0];
  const choices = props.role === "SUPERVISOR" ? q.filter((x) => props.queues.includes(x.uuid)) : q;
  return (
    <main class="dashboard">
      <div class="scope">
        <select
          data-testid="scope"
          value={scope ?? ""}
          onChange={(e) => setScope((e.target as HTMLSelectElement).value || null)}
        >
          {props.role !== "SUPERVISOR" && <option value="">{w.allQueues}</option>}
          {choices.map((x) => (
            <option key={x.uuid} value={x.uuid}>
              {x.name}
            </option>
          ))}
        </select>
        {figures.error && <span class="error">{figures.error}</span>}
      </div>
      <section class="tiles">
        <Tile label={w.conversationsToday} value={total ? String(total.conversations) : "—"} testid="tile-conversations" />
        <Tile label={w.csatToday} value={total?.csat != null ? `${Math.round(total.csat * 100)}%` : "—"} sub={total ? `n=${total.surveysAnswered}` : ""} testid="tile-csat" />
        <Tile label={w.firstResponse} value={total?.firstResponseMedianSecs != null ? duration(lang, total.firstResponseMedianSecs) : "—"} sub={total ? `n=${total.firstResponses}` : ""} testid="tile-first-response" />
        <Tile label={w.containment} value={total?.containmentRate != null ? `${Math.round(total.containmentRate * 100)}%` : "—"} testid="tile-containment" />
        <Tile label={w.breaches} value={total ? String(total.firstResponseBreaches) : "—"} testid="tile-breaches" />
      </section>
      <section class="card">
        <h2>
          {w.queues} <span class="live">● {w.live}</span>
        </h2>
        {(queues.error || live) && <p class="error">{queues.error || live}</p>}
        <table class="queues" data-testid="queues">
          <thead>
            <tr>
              <th>{w.queues}</th>
              <th>{w.waiting}</th>
              <th>{w.withAgent}</th>
              <th>{w.longestWait}</th>
              <th>{w.agentsOnline}</th>
              <th>{w.seats}</th>
              <th>{w.slaWarnings}</th>
            </tr>
          </thead>
          <tbody>
            {q.map((row) => {
              const now = Date.now();
              const overdue = row.waiting.filter((x) => new Date(x.firstResponseDue).getTime() < now).length;
              const soon = row.waiting.filter((x) => {
                const due = new Date(x.firstResponseDue).getTime();
                return due >= now && due - now < (row.firstResponseSecs * 1000) / 3;
              }).length;
              return (
                <tr key={row.uuid} data-queue={row.uuid}>
                  <td>{row.name}</td>
                  <td class="num" data-testid="waiting-count">
                    {row.waitingCount}
                  </td>
                  <td class="num">{row.withAgentCount}</td>
                  <td class={row.longestWaitSecs > row.firstResponseSecs ? "num bad" : "num"}>{duration(lang, row.longestWaitSecs)}</td>
                  <td class="num">{row.agentsOnline}</td>
                  <td class="num">
                    {row.freeSeats} / {row.seats}
                  </td>
                  <td>
                    {overdue > 0 && <span class="tag bad">{overdue} ⏰</span>}
                    {soon > 0 && <span class="tag warn">{soon} ⚠</span>}
                    {overdue + soon === 0 && <span class="muted">—</span>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
      <div class="charts">
        <section class="card">
          <h2>{w.handoffsByReason}</h2>
          <Reasons lang={lang} rows={f?.byReason ?? []} />
        </section>
        <section class="card">
          <h2>{w.forecastVsActual}</h2>
          <ForecastChart lang={lang} f={f} />
        </section>
      </div>
    </main>
  );
}

function Tile(props: { label: string; value: string; sub?: string; testid: string }) {
  return (
    <div class="tile card" data-testid={props.testid}>
      <span class="muted">{props.label}</span>
      <strong>{props.value}</strong>
      {props.sub && <small class="muted">{props.sub}</small>}
    </div>
  );
}

function reasonName(lang: Lang, key: string | null): string {
  const code = (key ?? "").toUpperCase() as HandoffReason;
  return HandoffReasonValues.includes(code) ? handoffLabel[lang][code] : (key ?? "—");
}

export function Reasons(props: { lang: Lang; rows: DashboardResult["byReason"] }) {
  const rows = props.rows.filter((r) => r.key != null && r.handoffs > 0);
  if (rows.length === 0) return <p class="muted">{words[props.lang].noData}</p>;
  const max = Math.max(...rows.map((r) => r.handoffs));
  return (
    <ul class="bars" data-testid="handoffs">
      {rows.map((r) => (
        <li key={r.key}>
          <span class="label">{reasonName(props.lang, r.key)}</span>
          <span class="bar" style={{ width: `${(r.handoffs / max) * 100}%` }} />
          <span class="num">{r.handoffs}</span>
        </li>
      ))}
    </ul>
  );
}

/** Today's hours: bars for the conversations that came so far, a line for the forecast kefu
 * made for each hour before the day began (the API fits it on the days before today, so the
 * day's own arrivals cannot flatter it). */
export function ForecastChart(props: { lang: Lang; f: DashboardResult | null }) {
  const w = words[props.lang];
  const f = props.f;
  if (!f) return <p class="muted">{w.noData}</p>;
  // The API's 24 hours start at local midnight (the query passes this browser's offset).
  const hours = f.forecast.today;
  const max = Math.max(1, ...hours.map((h) => Math.max(h.actual ?? 0, h.expected)));
  const arrived = hours.reduce((sum, h) => sum + (h.actual ?? 0), 0);
  const width = 480;
  const height = 160;
  const slot = width / 24;
  const y = (v: number) => height - (v / max) * (height - 10);
  const line = hours.map((h, i) => `${(i * slot + slot / 2).toFixed(1)},${y(h.expected).toFixed(1)}`).join(" ");
  return (
    <figure class="forecast" data-testid="forecast" data-arrived={arrived}>
      <svg viewBox={`0 0 ${width} ${height + 16}`} role="img">
        {hours.map((h, i) =>
          h.actual == null ? null : (
            <rect key={i} x={i * slot + 2} width={slot - 4} y={y(h.actual)} height={height - y(h.actual)} class="actual" data-hour={i} data-actual={h.actual}>
              <title>{`${i}:00 ${w.actual} ${h.actual} · ${w.forecast} ${h.expected.toFixed(1)}`}</title>
            </rect>
          ),
        )}
        {hours.length > 0 && <polyline points={line} class="predicted" data-hours={hours.length} />}
        {[0, 6, 12, 18].map((h) => (
          <text key={h} x={h * slot + 2} y={height + 13} class="tick">
            {`${h}:00`}
          </text>
        ))}
      </svg>
      <figcaption>
        <span class="key actual" /> {w.actual} <span class="key predicted" /> {w.forecast} · {time(new Date().toISOString(), props.lang)}
      </figcaption>
    </figure>
  );
}
