// Whether the control plane answers. Any request that cannot reach it marks
// it down; the app then probes with back-off and shows a banner until an
// answer comes, and bumps `epoch` so every view reloads its data.

import { Store } from "./store";

export type Reachability =
  | { down: false; epoch: number }
  | { down: true; epoch: number; message: string; since: number };

export const reachability = new Store<Reachability>({ down: false, epoch: 0 });

export function markDown(message: string, now: number = Date.now()): void {
  const cur = reachability.get();
  if (cur.down) {
    if (cur.message !== message) reachability.set({ ...cur, message });
    return;
  }
  reachability.set({ down: true, epoch: cur.epoch, message, since: now });
}

export function markUp(): void {
  const cur = reachability.get();
  if (!cur.down) return;
  reachability.set({ down: false, epoch: cur.epoch + 1 });
}
