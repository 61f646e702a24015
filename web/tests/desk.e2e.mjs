// The desk end to end in Chromium against a real `kefu serve`: a customer and an agent in two
// browser contexts chat (bot answer, hand-off, place in line, assignment, live replies both
// ways, a note the customer never sees, close, survey) while a supervisor's dashboard follows
// the queue. Every wait is for a condition on the page, bounded by HANG.
//
// Run by api/tests/desk.rs, which starts the server and passes:
//   KEFU_URL            http://127.0.0.1:<port>
//   KEFU_BIN            the kefu binary (to mint tokens with `kefu token`)
//   KEFU_DATA_DIR       the server's data directory, KEFU_TOKEN_SECRET its token secret
//   KEFU_SCREENSHOTS    where the screenshots go
//   KEFU_CHROMIUM       the browser (default /usr/bin/chromium)
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

const HANG = 60_000;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; this script is run by api/tests/desk.rs (cargo test -p kefu-api --test desk)`);
  return v;
}

const url = need("KEFU_URL");
const bin = need("KEFU_BIN");
const shots = need("KEFU_SCREENSHOTS");
const browserPath = process.env.KEFU_CHROMIUM || "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

function token(role, id, queues = []) {
  const args = ["token", "--role", role, "--id", id, ...queues.flatMap((q) => ["--queue", q])];
  return execFileSync(bin, args, { encoding: "utf8" }).trim();
}

async function gql(tok, query, variables = {}) {
  const r = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${tok}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json();
  assert.ok(!body.errors, `${query}\nanswered ${r.status}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Asks `check` again until it answers something, for at most HANG. */
async function until(check, what) {
  const deadline = Date.now() + HANG;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The shop's set-up, as an admin and the order system would do it through the API.
// Every chat below comes after this (the server stamps with the system clock).
const began = new Date();
const admin = token("admin", "ops");
const queue = (
  await gql(admin, `mutation { defineQueue(input: {name: "售后 after-sales", categories: ["phones", "logistics"], skills: ["after-sales"], firstResponseSecs: 120, resolutionSecs: 3600}) { id } }`)
).defineQueue.id;
const agentId = randomUUID();
await gql(admin, `mutation($a: String!) { registerAgent(agentId: $a, name: "小王", skills: ["after-sales"], maxConcurrent: 3) { id } }`, { a: agentId });
const customerId = randomUUID();
const orderId = `JD${customerId.replaceAll("-", "").slice(0, 12)}`;
const oms = token("integration", "oms");
await gql(oms, `mutation($c: String!) { recordCustomerProfile(customerId: $c, tier: PLUS, locale: "zh-CN") { id } }`, { c: customerId });
const now = new Date().toISOString();
await gql(oms, `mutation($o: OrderInput!) { recordOrder(input: $o) { id } }`, {
  o: { customerId, orderId, category: "phones", status: "SHIPPED", total: { minorUnits: 399900, currency: "CNY" }, placedAt: now, statusAt: now },
});

const browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox"] });
let failed = false;
try {
  const open = async (viewport, lang) => {
    const context = await browser.newContext({ viewport, locale: lang === "zh" ? "zh-CN" : "en-US" });
    const page = await context.newPage();
    page.setDefaultTimeout(HANG);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    // Offline-first: any request to another host fails the test.
    page.on("request", (r) => {
      if (!r.url().startsWith(url) && !r.url().startsWith(url.replace("http", "ws"))) errors.push(`request to another host: ${r.url()}`);
    });
    page.errors = errors;
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  // The first screen: sign in.
  const first = await open({ width: 1280, height: 720 }, "zh");
  await first.goto(url);
  await first.getByRole("button", { name: "登录" }).waitFor();
  await shot(first, "01-sign-in-zh");
  await first.fill("textarea[name=token]", "not-a-token");
  await first.getByRole("button", { name: "登录" }).click();
  await first.getByRole("alert").waitFor();
  await first.context().close();

  const supervisor = await open({ width: 1400, height: 900 }, "zh");
  const lead = token("supervisor", "lead-1", [queue]);
  await supervisor.goto(`${url}/?token=${lead}&lang=zh`);
  await supervisor.locator(`tr[data-queue="${queue}"]`).waitFor();

  const agent = await open({ width: 1440, height: 900 }, "zh");
  await agent.goto(`${url}/?token=${token("agent", agentId)}&lang=zh`);
  await agent.locator("[data-testid=presence]").waitFor();
  await shot(agent, "03-workbench-offline-zh");

  const customer = await open({ width: 520, height: 860 }, "zh");
  await customer.goto(`${url}/?token=${token("customer", customerId)}&lang=zh&order=${orderId}`);
  await customer.getByTestId("start").click();
  await customer.locator("[data-testid=chat-status][data-status=BOT]").waitFor();

  // Unsure, the bot offers choices from the demo knowledge base the server seeded; the
  // customer picks one and gets its answer.
  await customer.fill("input[name=message]", "发票");
  await customer.getByTestId("send").click();
  await customer.getByTestId("choice").filter({ hasText: "怎么开发票？" }).click();
  await customer.locator("li[data-speaker=CUSTOMER]").filter({ hasText: "怎么开发票？" }).waitFor();
  await customer.locator("li[data-speaker=BOT]").nth(1).waitFor();
  const invoice = await customer.locator("li[data-speaker=BOT] .bubble").nth(1).innerText();
  assert.ok(invoice.includes("发票") && !invoice.includes("\n1."), `the bot answers the chosen question: ${invoice}`);
  // Sure, it answers outright.
  await customer.fill("input[name=message]", "运费是怎么收取的？");
  await customer.getByTestId("send").click();
  await customer.locator("li[data-speaker=BOT]").nth(2).waitFor();
  const botText = await customer.locator("li[data-speaker=BOT] .bubble").nth(2).innerText();
  assert.ok(botText.includes("运费"), `the bot answers about shipping fees: ${botText}`);
  await shot(customer, "02-chat-bot-zh");

  // 转人工 with nobody online: queued, with a place in line and no promised wait.
  await customer.getByTestId("ask-human").click();
  await customer.locator("[data-testid=chat-status][data-status=QUEUED]").waitFor();
  const queuedAt = Date.now();
  const line = await customer.getByTestId("place-in-line").innerText();
  assert.match(line, /1/, `the customer is first in line: ${line}`);
  // The supervisor's dashboard follows the queue (over its subscription).
  await supervisor.locator(`tr[data-queue="${queue}"] [data-testid=waiting-count]`).filter({ hasText: /^1$/ }).waitFor();
  const seenAfter = Date.now() - queuedAt;
  console.log(`the dashboard showed the queued chat ${seenAfter} ms after the customer saw it queued`);
  await shot(customer, "04-chat-queued-zh");
  await shot(supervisor, "05-dashboard-queued-zh");

  // The agent goes online; the assigner seats the chat with them; it appears live.
  await agent.getByTestId("status-online").click();
  await agent.locator("[data-testid=presence][data-status=ONLINE]").waitFor();
  const item = agent.locator("[data-testid=chat-list] button").first();
  await item.waitFor();
  await item.click();
  await agent.locator("[data-testid=desk-transcript] li[data-speaker=CUSTOMER]").filter({ hasText: "运费是怎么收取的" }).waitFor();
  await agent.locator("[data-testid=order]").filter({ hasText: orderId }).waitFor();
  await agent.locator("[data-testid=order-status][data-status=SHIPPED]").filter({ hasText: "已发货" }).waitFor();
  const triage = await agent.getByTestId("triage").innerText();
  assert.ok(triage.includes("客户要求"), `the hand-off reason is shown: ${triage}`);
  await customer.locator("[data-testid=chat-status][data-status=WITH_AGENT]").waitFor();

  // Live both ways.
  await agent.fill("input[name=reply]", "您好，我是小王，马上为您查询运费");
  await agent.getByTestId("send-reply").click();
  await customer.locator("li[data-speaker=AGENT]").filter({ hasText: "我是小王" }).waitFor();
  await customer.fill("input[name=message]", "好的，谢谢，订单是昨天下的。怎么开发票？");
  await customer.getByTestId("send").click();
  await agent.locator("[data-testid=desk-transcript] li[data-speaker=CUSTOMER]").filter({ hasText: "订单是昨天下的" }).waitFor();

  // A note: on the desk, never at the customer's. The reply after it proves the customer's
  // window has caught up past the note when the note is looked for.
  const note = "内部备注：客户为 PLUS 会员，优先处理";
  await agent.fill("input[name=note]", note);
  await agent.getByTestId("add-note").click();
  await agent.locator("[data-testid=desk-transcript] li[data-internal=true]").filter({ hasText: note }).waitFor();
  await agent.fill("input[name=reply]", "已为您查到：满 99 元包邮，本单免运费");
  await agent.getByTestId("send-reply").click();
  await customer.locator("li[data-speaker=AGENT]").filter({ hasText: "本单免运费" }).waitFor();
  assert.equal(await customer.getByText(note).count(), 0, "the customer never sees the internal note");
  assert.ok(!(await customer.content()).includes("内部备注"), "nothing of the note reaches the customer's page");
  // The bot, no longer answering the customer itself, suggests its answers to the agent,
  // with its confidence; the agent puts one in the reply box.
  await agent.locator("[data-testid=suggestions][data-source=bot] li").first().waitFor();
  const confidence = Number(await agent.getByTestId("suggestion-confidence").getAttribute("data-confidence"));
  assert.ok(confidence >= 0 && confidence <= 1, `the bot's confidence is a probability: ${confidence}`);
  const suggested = await agent.locator("[data-testid=suggestions][data-source=bot] li").first().innerText();
  assert.ok(suggested.includes("发票"), `the bot suggests the invoice answer for the customer's question: ${suggested}`);
  await agent.locator("[data-testid=suggestions][data-source=bot] li button").first().click();
  assert.ok((await agent.inputValue("input[name=reply]")).includes("发票"), "the suggestion is put in the reply box");
  await agent.fill("input[name=reply]", "");
  await shot(agent, "06-workbench-chat-zh");
  await shot(customer, "07-chat-with-agent-zh");

  // A ticket from the chat, for the refund that cannot be settled in it.
  await agent.selectOption("select[name=kind]", "DELIVERY");
  await agent.fill("input[name=ticket-subject]", "运费退还");
  await agent.getByTestId("open-ticket").click();
  await agent.getByTestId("ticket-opened").waitFor();
  // The tickets read model follows the log; wait until it has the ticket.
  const ticket = await until(async () => {
    const nodes = (await gql(admin, `{ tickets(first: 5) { nodes { kind subject conversation orderId } } }`)).tickets.nodes;
    return nodes.length > 0 ? nodes : null;
  }, "the ticket in the tickets read model");
  assert.deepEqual(ticket.map((t) => [t.kind, t.subject, t.orderId]), [["DELIVERY", "运费退还", orderId]], JSON.stringify(ticket));

  // Back to the queue with a reason; the assigner seats it again with the only agent online.
  const conversationId = await item.getAttribute("data-conversation");
  await agent.fill("input[name=transfer-reason]", "请同组同事跟进");
  await agent.getByTestId("transfer").click();
  const transferred = await until(async () => {
    const c = (await gql(lead, `query($c: String!) { conversation(id: $c) { status agent timeline { kind reason } } }`, { c: conversationId })).conversation;
    return c.status === "WITH_AGENT" && c.timeline.some((t) => t.kind === "CONVERSATION_TRANSFERRED") ? c : null;
  }, "the transfer, and the chat seated again");
  assert.equal(transferred.agent, agentId);
  assert.equal(transferred.timeline.find((t) => t.kind === "CONVERSATION_TRANSFERRED").reason, "请同组同事跟进");
  await agent.locator("[data-testid=conversation][data-status=WITH_AGENT]").waitFor();
  await customer.locator("[data-testid=chat-status][data-status=WITH_AGENT]").waitFor();

  // A colleague comes online; the agent hands the chat to them by name. The pane reads its
  // colleagues with the chat, so the agent's next reply brings them into the list.
  const colleagueId = randomUUID();
  await gql(admin, `mutation($a: String!) { registerAgent(agentId: $a, name: "小李", skills: ["after-sales"], maxConcurrent: 2) { id } }`, { a: colleagueId });
  const colleague = token("agent", colleagueId);
  await gql(colleague, `mutation { setAgentStatus(status: ONLINE) { position } }`);
  await agent.fill("input[name=reply]", "我请同事小李继续为您处理");
  await agent.getByTestId("send-reply").click();
  await agent.locator("select[name=transfer-to] option", { hasText: "小李" }).waitFor({ state: "attached" });
  await agent.selectOption("select[name=transfer-to]", colleagueId);
  await agent.fill("input[name=transfer-reason]", "小李负责运费退还");
  await agent.getByTestId("transfer").click();
  const handed = await until(async () => {
    const c = (await gql(lead, `query($c: String!) { conversation(id: $c) { agent timeline { kind reason } } }`, { c: conversationId })).conversation;
    return c.agent === colleagueId ? c : null;
  }, "the chat with the colleague");
  assert.ok(handed.timeline.some((t) => t.kind === "CONVERSATION_TRANSFERRED" && t.reason === "小李负责运费退还"), JSON.stringify(handed));
  // The agent's seat is free again: the chat leaves their list.
  await agent.locator("[data-testid=chat-list] button").first().waitFor({ state: "detached" });

  // The colleague closes it; the survey worker offers the survey; the customer answers it.
  await gql(colleague, `mutation($c: String!) { closeConversation(conversationId: $c, reason: RESOLVED) { position } }`, { c: conversationId });
  await customer.getByTestId("survey").waitFor();
  await customer.getByTestId("star-5").click();
  await customer.fill("input[name=comment]", "很快，很满意");
  await customer.getByTestId("survey-submit").click();
  await customer.getByTestId("survey-thanks").waitFor();
  await shot(customer, "08-chat-survey-answered-zh");

  // The dashboard: the queue empty again, today's CSAT from the answer.
  await supervisor.locator(`tr[data-queue="${queue}"] [data-testid=waiting-count]`).filter({ hasText: /^0$/ }).waitFor();
  await supervisor.getByTestId("tile-csat").filter({ hasText: "100%" }).waitFor();
  await supervisor.getByTestId("handoffs").waitFor();
  // Today by hour: the forecast's line over all 24 hours (attached, not visible: a queue
  // without history is forecast 0, a line of no height), and the queue's one chat among the
  // hours counted (unless the day turned since the test began: then it came yesterday).
  await supervisor.locator("[data-testid=forecast] polyline[data-hours='24']").waitFor({ state: "attached" });
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  if (midnight <= began) await supervisor.locator("[data-testid=forecast][data-arrived='1']").waitFor();
  await shot(supervisor, "09-dashboard-zh");

  // The same screens in English.
  for (const [page, name] of [
    [supervisor, "10-dashboard-en"],
    [agent, "11-workbench-en"],
    [customer, "12-chat-en"],
  ]) {
    await page.getByTestId("lang").click();
    await page.locator("html[lang=en]").waitFor();
    await shot(page, name);
  }
  await supervisor.getByText("CSAT today").waitFor();
  await agent.getByText("My chats").waitFor();
  await customer.getByText("Thank you for your rating!").waitFor();

  for (const page of [supervisor, agent, customer]) {
    assert.deepEqual(page.errors, [], "no page errors and no request to another host");
  }
  console.log(`desk: 1 passed, 0 failed; screenshots in ${shots}`);
} catch (e) {
  failed = true;
  console.error(e);
  // What each screen showed when it failed.
  for (const [i, context] of browser.contexts().entries()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: join(shots, `failure-${i}.png`), fullPage: true }).catch(() => {});
      if (page.errors?.length) console.error(`page ${i} errors: ${page.errors.join("\n")}`);
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
