// One line of text and a button: the chat's message, the agent's reply, note and transfer
// reason. The text is cleared when sent; blank text is not sent.
import type { ComponentChildren } from "preact";

export function Compose(props: {
  name: string;
  placeholder: string;
  label: string;
  testid: string;
  value: string;
  onInput: (text: string) => void;
  onSend: (text: string) => void;
  kind?: string;
  primary?: boolean;
  children?: ComponentChildren;
}) {
  return (
    <form
      class={props.kind ? `compose ${props.kind}` : "compose"}
      onSubmit={(e) => {
        e.preventDefault();
        const t = props.value.trim();
        if (!t) return;
        props.onInput("");
        props.onSend(t);
      }}
    >
      <input name={props.name} placeholder={props.placeholder} value={props.value} onInput={(e) => props.onInput((e.target as HTMLInputElement).value)} autocomplete="off" />
      <button type="submit" class={props.primary ? "primary" : undefined} data-testid={props.testid}>
        {props.label}
      </button>
      {props.children}
    </form>
  );
}
