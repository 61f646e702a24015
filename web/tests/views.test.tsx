// Component tests of the desk's views: each rendered by preact into happy-dom (a DOM without
// a browser), the way the screens show the API's answers.
import { render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, describe, expect, test, vi } from "vitest";
import type { DashboardResult, MyConversationResult } from "../src/gen/graphql";
import { words } from "../src/i18n";
import type { Client } from "../src/client";
import { Chat, Transcript, Waiting } from "../src/views/chat";
import { Compose } from "../src/views/compose";
import { ForecastChart, Reasons } from "../src/views/dashboard";

type View = MyConversationResult["myConversation"];

let root: HTMLElement;
function show(node: preact.ComponentChild): HTMLElement {
  root = document.createElement("div");
  document.body.append(root);
  act(() => render(node, root));
  return root;
}
afterEach(() => {
  render(null, root);
  root.remove();
});

function today(hours: Array<[number | null, number]>): DashboardResult {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  return {
    total: [],
    byReason: [],
    forecast: {
      trainedOnHours: 24 * 28,
      today: hours.map(([actual, expected], i) => ({ hour: new Date(midnight.getTime() + i * 3_600_000).toISOString(), expected, actual })),
    },
  };
}

describe("the forecast chart", () => {
  test("bars for the hours that have begun, a line for the forecast over all 24", () => {
    const hours: Array<[number | null, number]> = Array.from({ length: 24 }, (_, i) => [i < 3 ? i + 1 : null, 2]);
    const el = show(<ForecastChart lang="en" f={today(hours)} />);
    const bars = [...el.querySelectorAll("rect.actual")];
    expect(bars.map((b) => [b.getAttribute("data-hour"), b.getAttribute("data-actual")])).toEqual([
      ["0", "1"],
      ["1", "2"],
      ["2", "3"],
    ]);
    expect(el.querySelector("[data-testid=forecast]")?.getAttribute("data-arrived")).toBe("6");
    const line = el.querySelector("polyline.predicted");
    expect(line?.getAttribute("points")?.split(" ")).toHaveLength(24);
    // The tallest bar (3) sets the scale; the forecast (2) is drawn lower.
    const ys = line!.getAttribute("points")!.split(" ").map((p) => Number(p.split(",")[1]));
    expect(new Set(ys).size).toBe(1);
    expect(ys[0]).toBeGreaterThan(Number(bars[2].getAttribute("y")));
    expect(bars[0].querySelector("title")?.textContent).toBe("0:00 Actual 1 · Forecast 2.0");
  });

  test("says there is nothing yet before the figures arrive", () => {
    expect(show(<ForecastChart lang="zh" f={null} />).textContent).toBe(words.zh.noData);
  });
});

describe("hand-offs by reason", () => {
  test("names each reason in the desk's language and leaves out empty rows", () => {
    const rows = [
      { key: "customer_asked", handoffs: 2 },
      { key: "low_confidence", handoffs: 1 },
      { key: "vip", handoffs: 0 },
      { key: null, handoffs: 4 },
    ];
    const items = [...show(<Reasons lang="zh" rows={rows} />).querySelectorAll("li")];
    expect(items.map((li) => [li.querySelector(".label")?.textContent, li.querySelector(".num")?.textContent])).toEqual([
      ["客户要求", "2"],
      ["机器人把握不足", "1"],
    ]);
    expect((items[1].querySelector(".bar") as HTMLElement).style.width).toBe("50%");
  });
});

describe("the customer's transcript", () => {
  const turns: View["turns"] = [
    { message: "m1", speaker: "CUSTOMER", text: "发票", at: "2026-12-04T08:00:00Z" },
    { message: "m2", speaker: "BOT", text: "您想问的是：\n1. 怎么开发票？\n2. 发票抬头能改吗？", at: "2026-12-04T08:00:01Z" },
    { message: "m3", speaker: "BOT", text: "好的，\n这不是选项", at: "2026-12-04T08:00:02Z" },
  ];

  test("a bot turn offering choices shows them as buttons that ask the chosen question", () => {
    const chosen = vi.fn();
    const el = show(<Transcript lang="zh" turns={turns} onChoose={chosen} />);
    const buttons = [...el.querySelectorAll<HTMLButtonElement>("[data-testid=choice]")];
    expect(buttons.map((b) => b.textContent)).toEqual(["怎么开发票？", "发票抬头能改吗？"]);
    act(() => buttons[1].click());
    expect(chosen).toHaveBeenCalledWith("发票抬头能改吗？");
    // A turn that only looks like a list in part is text.
    expect(el.querySelectorAll("li")[2].querySelector(".bubble")?.textContent).toBe("好的，\n这不是选项");
  });

  test("choices cannot be picked where nothing would ask them", () => {
    const el = show(<Transcript lang="en" turns={turns} />);
    expect([...el.querySelectorAll<HTMLButtonElement>("[data-testid=choice]")].every((b) => b.disabled)).toBe(true);
  });
});

describe("waiting in line", () => {
  const queued = (placeInLine: number | null, expectedWaitSecs: number | null): View => ({
    uuid: "c",
    status: "QUEUED",
    closeReason: null,
    placeInLine,
    expectedWaitSecs,
    survey: { offered: false, score: null },
    turns: [],
  });

  test("shows the place in line and the expected wait", () => {
    const text = show(<Waiting lang="en" c={queued(2, 90)} />).querySelector("[data-testid=place-in-line]")?.textContent;
    expect(text).toMatch(/^You are number 2 in line · /);
    expect(text).not.toContain(words.en.noAgentOnline);
  });

  test("says no agent is online when there is no wait to expect", () => {
    expect(show(<Waiting lang="zh" c={queued(1, null)} />).textContent).toContain(words.zh.noAgentOnline);
  });

  test("shows nothing once an agent has the chat", () => {
    expect(show(<Waiting lang="en" c={{ ...queued(null, null), status: "WITH_AGENT" }} />).innerHTML).toBe("");
  });
});

describe("compose", () => {
  function compose(onSend: (t: string) => void, value: string, onInput = vi.fn()) {
    const el = show(<Compose name="m" placeholder="" label="Send" testid="send" value={value} onInput={onInput} onSend={onSend} />);
    act(() => el.querySelector<HTMLButtonElement>("[data-testid=send]")!.click());
    return onInput;
  }

  test("sends the text trimmed and clears it", () => {
    const sent = vi.fn();
    const input = compose(sent, "  where is my parcel?  ");
    expect(sent).toHaveBeenCalledWith("where is my parcel?");
    expect(input).toHaveBeenCalledWith("");
  });

  test("does not send blank text", () => {
    const sent = vi.fn();
    compose(sent, "   ");
    expect(sent).not.toHaveBeenCalled();
  });
});

describe("starting a chat", () => {
  test("the first read of the new chat waits for the read model to reach the start", async () => {
    // The server answers the start with the position it was written at; read without it, a
    // fast first read finds no conversation yet and nothing would ask again.
    const asked: Array<[string, Record<string, unknown>]> = [];
    const answers: Record<string, unknown> = {
      MyConversations: { myConversations: { nodes: [] } },
      StartConversation: { startConversation: { id: "c-1", position: "42" } },
    };
    const client = {
      run: (op: { name: string }, vars: Record<string, unknown>) => {
        asked.push([op.name, vars]);
        return op.name in answers ? Promise.resolve(answers[op.name]) : new Promise(() => {});
      },
      subscribe: () => () => {},
    } as unknown as Client;
    // Promise chains settle over several turns of the microtask queue; no timer is involved.
    const settle = async () => {
      for (let i = 0; i < 10; i++) await act(async () => {});
    };
    const el = show(<Chat client={client} lang="en" />);
    await settle();
    await act(async () => {
      (el.querySelector("[data-testid=start]") as HTMLButtonElement).click();
    });
    await settle();
    const reads = asked.filter(([name]) => name === "MyConversation").map(([, vars]) => vars);
    expect(reads).toEqual([{ id: "c-1", atLeast: "42" }]);
  });

  test("a first read that is refused is asked again, with no event to prompt it", async () => {
    vi.useFakeTimers();
    try {
      let reads = 0;
      const client = {
        run: (op: { name: string }) => {
          if (op.name === "MyConversations") return Promise.resolve({ myConversations: { nodes: [{ uuid: "c-1", status: "BOT" }] } });
          reads++;
          return Promise.reject(new Error("UNAVAILABLE: the read models have not reached position 42; try again"));
        },
        subscribe: () => () => {},
      } as unknown as Client;
      const settle = async () => {
        for (let i = 0; i < 10; i++) await act(async () => {});
      };
      const el = show(<Chat client={client} lang="en" />);
      await settle();
      expect(reads).toBe(1);
      expect(el.textContent).toContain("try again");
      await act(async () => {
        vi.advanceTimersByTime(3000);
      });
      await settle();
      expect(reads).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});
