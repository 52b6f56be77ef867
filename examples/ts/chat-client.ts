// A TypeScript client of the chat example, checked in CI with
// `tsc --noEmit` against wsway.js's typings (core/js/wsway.d.ts) and the
// contract the chat's event routes generate (examples/src/chat-contract.d.ts).
// The `@ts-expect-error` lines are calls the contract must refuse: were
// one of them accepted, tsc would fail on the unused directive.
import { connect, EventError } from "wsway";
import type { Contract, Said } from "../src/chat-contract";

export async function chat(room: string, renew: () => Promise<string>): Promise<string[]> {
  const socket = connect<Contract>(`/chat/${encodeURIComponent(room)}`, { token: renew });
  const lines: string[] = [];
  socket.on("chat:welcome", (w) => lines.push(`in ${w.room} as ${w.name}`));
  socket.on("chat:message", (m: Said) => lines.push(`${m.name}: ${m.text}`));
  socket.on("chat:join", (m) => lines.push(`${m.name} joined`));
  socket.on("disconnect", ({ code, reason }) => lines.push(`closed ${code} ${reason}`));

  const ack = await socket.emit("chat:send", { text: "hello" });
  const sent: boolean = ack.sent;
  const who = await socket.emit("chat:who");
  const names: string[] = who.members;
  lines.push(`${who.count} here: ${names.join(", ")} (sent: ${sent})`);
  try {
    await socket.emit("chat:send", { text: "" });
  } catch (e) {
    if (e instanceof EventError && e.code === "empty") lines.push("say something");
  }

  // @ts-expect-error: no such event (a typo)
  await socket.emit("chat:sned", { text: "hello" });
  // @ts-expect-error: `text` is a string
  await socket.emit("chat:send", { text: 42 });
  // @ts-expect-error: a misspelt field
  await socket.emit("chat:send", { txt: "hello" });
  // @ts-expect-error: the data is missing
  await socket.emit("chat:send");
  // @ts-expect-error: the reply has no `id`
  lines.push((await socket.emit("chat:send", { text: "hello" })).id);
  // @ts-expect-error: a chat line has no `body`
  socket.on("chat:message", (m) => lines.push(m.body));
  // @ts-expect-error: the server never pushes this
  socket.on("chat:typing", () => {});
  return lines;
}
