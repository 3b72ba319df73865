// What the browser tests of meeting chat share: reading a page's chat
// (through window.meet) and writing in it as a person does.

import { until } from './harness.mjs';

/** The meeting's Matrix room id, once the page knows it. */
export async function chatRoomOf(p) {
  const handle = await p.page.waitForFunction(() => window.meet.chatRoomId(), null, { timeout: 30000 });
  return handle.jsonValue();
}

export const chatOf = (p) => p.page.evaluate(() => window.meet.chatMessages());
export const delayedOf = (p) => p.page.evaluate(() => window.meet.chatDelayed());

/** Waits until `predicate(chatMessages)` holds on page `p`; returns the messages. */
export async function waitForChat(p, what, predicate, timeoutMs = 5000) {
  let last = [];
  try {
    return await until(`${p.name} to show ${what}`, async () => {
      last = await chatOf(p);
      return predicate(last) ? last : null;
    }, timeoutMs, 50);
  } catch (err) {
    err.message += `\n${p.name}'s chat: ${JSON.stringify(last, null, 1)}`;
    throw err;
  }
}

/** The input named "Message", the chat panel opened if needed. */
export async function messageBox(p) {
  const box = p.page.getByRole('textbox', { name: 'Message', exact: true });
  if (!(await box.isVisible())) await p.page.getByRole('button', { name: 'Chat' }).click();
  await box.waitFor({ state: 'visible', timeout: 3000 });
  return box;
}

/** Types `text` into the chat and presses Enter, as a person would. */
export async function typeChat(p, text) {
  const box = await messageBox(p);
  await box.fill(text);
  await box.press('Enter');
}
