import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, Client } from "./client";
import { Me, type MeResult, type Role } from "./gen/graphql";
import { type Lang, roleLabel, words } from "./i18n";
import { Chat } from "./views/chat";
import { describe } from "./views/live";
import { Workbench } from "./views/workbench";
import { Dashboard } from "./views/dashboard";
import "./desk.css";

const TOKEN = "kefu.token";
const LANG = "kefu.lang";

function initialLang(): Lang {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") return asked;
  const kept = localStorage.getItem(LANG);
  if (kept === "zh" || kept === "en") return kept;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

/** A token in the address (`?token=…`, how a shop hands its signed-in customer to the
 * widget) is taken once and removed from the address bar, so it is not bookmarked. */
function initialToken(): string {
  const params = new URLSearchParams(location.search);
  const given = params.get("token");
  if (given) {
    localStorage.setItem(TOKEN, given);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
    return given;
  }
  return localStorage.getItem(TOKEN) ?? "";
}

type Session = { client: Client; me: MeResult["me"] };

function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const [token, setToken] = useState(initialToken);
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState("");
  const w = words[lang];

  useEffect(() => {
    localStorage.setItem(LANG, lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = w.title;
  }, [lang]);

  useEffect(() => {
    if (!token) return;
    const client = new Client(token);
    client
      .run(Me, {})
      .then((r) => setSession({ client, me: r.me }))
      .catch((e: unknown) => {
        localStorage.removeItem(TOKEN);
        setToken("");
        // A refused token says so; anything else (kefu unreachable) is shown as it came.
        setError(e instanceof ApiError && e.code === "UNAUTHENTICATED" ? w.badToken : describe(e));
      });
    return () => client.close();
  }, [token]);

  const signOut = () => {
    localStorage.removeItem(TOKEN);
    session?.client.close();
    setSession(null);
    setToken("");
  };

  return (
    <div class="desk">
      <header class="bar">
        <strong class="brand">{w.title}</strong>
        {session && (
          <span class="who" data-testid="who">
            {roleLabel[lang][session.me.role]} · {session.me.id}
          </span>
        )}
        <span class="spacer" />
        <button class="link" data-testid="lang" onClick={() => setLang(lang === "zh" ? "en" : "zh")}>
          {w.language}
        </button>
        {session && (
          <button class="link" onClick={signOut}>
            {w.signOut}
          </button>
        )}
      </header>
      {session ? <Screen me={session.me} client={session.client} lang={lang} /> : token ? null : <SignIn lang={lang} error={error} onToken={(t) => { setError(""); setToken(t); }} />}
    </div>
  );
}

function Screen(props: { me: MeResult["me"]; client: Client; lang: Lang }) {
  const { client, lang } = props;
  const role: Role = props.me.role;
  switch (role) {
    case "CUSTOMER":
      return <Chat client={client} lang={lang} />;
    case "AGENT":
      return <Workbench client={client} lang={lang} />;
    case "SUPERVISOR":
    case "ADMIN":
    case "ANALYST":
      return <Dashboard client={client} lang={lang} role={role} queues={props.me.queues} />;
    default:
      return <p class="notice">{words[lang].roleNotServed + roleLabel[lang][role]}</p>;
  }
}

function SignIn(props: { lang: Lang; error: string; onToken: (t: string) => void }) {
  const w = words[props.lang];
  const [value, setValue] = useState("");
  return (
    <form
      class="signin card"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) props.onToken(value.trim());
      }}
    >
      <h1>{w.signInTitle}</h1>
      <p>{w.signInHelp}</p>
      <pre>kefu token --role agent --id &lt;agent uuid&gt;</pre>
      <label>
        {w.token}
        <textarea name="token" rows={4} value={value} onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)} />
      </label>
      {props.error && <p class="error" role="alert">{props.error}</p>}
      <button type="submit" class="primary">
        {w.signIn}
      </button>
    </form>
  );
}

render(<App />, document.getElementById("app")!);
