/** The simulator's deterministic event model: same seed, same events. */
import type { ProducedRecord } from "../../pipeline/mod.ts";

export interface TrafficOptions {
  readonly seed: number;
  readonly customers: number;
  readonly products: number;
  readonly fraudBurstChance: number;
  readonly unusualAmountShare: number;
  readonly demandSpikeChance: number;
  readonly malformedShare: number;
  readonly topics: {
    readonly customers: string;
    readonly activity: string;
    readonly orders: string;
    readonly payments: string;
    readonly views: string;
  };
}

const TIERS = ["BRONZE", "BRONZE", "BRONZE", "SILVER", "SILVER", "GOLD", "PLATINUM"] as const;
const REGIONS = ["EU-WEST", "EU-CENTRAL", "US-EAST", "US-WEST", "APAC"];
const CATEGORIES = [
  "Electronics",
  "Computers",
  "Accessories",
  "Phones",
  "Home",
  "Books",
  "Sports",
  "Fashion",
];
const ACTIVITIES = [
  "LOGIN",
  "VIEW",
  "VIEW",
  "SEARCH",
  "SEARCH",
  "ADD_TO_CART",
  "PURCHASE",
  "LOGOUT",
  "SUPPORT_CALL",
];
const METHODS = ["CARD", "CARD", "WALLET", "BANK_TRANSFER"];

/** Mulberry32: small, fast, seedable. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class TrafficModel {
  readonly #rand: () => number;
  #seq = 0;
  readonly #prices: number[];
  readonly #typicalPayment: number[];

  constructor(readonly o: TrafficOptions) {
    this.#rand = mulberry32(o.seed);
    this.#prices = Array.from(
      { length: o.products },
      () => Math.round((5 + this.#rand() * 495) * 100) / 100,
    );
    this.#typicalPayment = Array.from({ length: o.customers }, () => 20 + this.#rand() * 200);
  }

  #pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.#rand() * list.length)];
  }

  #customer(): string {
    // Some customers are far more active than others.
    return `C${String(Math.floor(this.#rand() ** 2 * this.o.customers)).padStart(6, "0")}`;
  }

  #product(): number {
    return Math.floor(this.#rand() ** 1.5 * this.o.products);
  }

  #productId(i: number): string {
    return `P${String(i).padStart(5, "0")}`;
  }

  #category(i: number): string {
    return CATEGORIES[i % CATEGORIES.length];
  }

  /** Every customer's info, in chunks. */
  *customerInfo(now: number): Generator<Map<string, ProducedRecord[]>> {
    for (let start = 0; start < this.o.customers; start += 1000) {
      const records: ProducedRecord[] = [];
      for (let i = start; i < Math.min(this.o.customers, start + 1000); i++) {
        const customerId = `C${String(i).padStart(6, "0")}`;
        records.push({
          key: customerId,
          value: {
            customerId,
            tier: this.#pick(TIERS),
            region: this.#pick(REGIONS),
            name: `Customer ${i}`,
          },
          timestamp: now - 1,
        });
      }
      yield new Map([[this.o.topics.customers, records]]);
    }
  }

  /** About `n` events at time `now`, by topic. */
  tick(n: number, now: number): Map<string, ProducedRecord[]> {
    const t = this.o.topics;
    const out = new Map<string, ProducedRecord[]>([
      [t.activity, []],
      [t.views, []],
      [t.orders, []],
      [t.payments, []],
    ]);
    const add = (topic: string, r: ProducedRecord) => out.get(topic)!.push(r);
    for (let i = 0; i < n; i++) {
      const r = this.#rand();
      const id = ++this.#seq;
      if (r < this.o.malformedShare) {
        add(this.#pick([t.activity, t.orders, t.payments, t.views]), this.#malformed(id, now));
      } else if (r < 0.35) {
        const customerId = this.#customer();
        const p = this.#product();
        const activityType = this.#pick(ACTIVITIES);
        const withProduct = activityType === "VIEW" || activityType === "ADD_TO_CART" ||
          activityType === "PURCHASE";
        add(t.activity, {
          key: customerId,
          value: {
            eventId: `A${id}`,
            customerId,
            activityType,
            timestamp: now,
            sessionId: `S-${customerId}`,
            channel: this.#pick(["WEB", "MOBILE", "STORE"]),
            ...(withProduct ? { productId: this.#productId(p), category: this.#category(p) } : {}),
          },
        });
      } else if (r < 0.65) {
        const customerId = this.#customer();
        const p = this.#product();
        add(t.views, {
          key: customerId,
          value: {
            eventId: `V${id}`,
            customerId,
            productId: this.#productId(p),
            category: this.#category(p),
            price: this.#prices[p],
            timestamp: now,
          },
        });
      } else if (r < 0.85) {
        add(t.orders, this.#order(id, this.#customer(), this.#product(), now));
      } else {
        add(t.payments, this.#payment(id, this.#customer(), now));
      }
    }
    if (this.#rand() < this.o.fraudBurstChance) {
      const customerId = this.#customer();
      for (let k = 0; k < 15; k++) {
        add(t.payments, this.#payment(++this.#seq, customerId, now - 60_000 + k * 4000));
      }
    }
    if (this.#rand() < this.o.demandSpikeChance) {
      const p = this.#product();
      for (let k = 0; k < 120; k++) {
        add(t.orders, this.#order(++this.#seq, this.#customer(), p, now));
      }
    }
    return out;
  }

  #order(id: number, customerId: string, p: number, now: number): ProducedRecord {
    const quantity = 1 + Math.floor(this.#rand() ** 3 * 5);
    const unitPrice = this.#prices[p];
    const orderId = `O${id}`;
    return {
      key: orderId,
      value: {
        orderId,
        customerId,
        productId: this.#productId(p),
        category: this.#category(p),
        quantity,
        unitPrice,
        totalAmount: Math.round(quantity * unitPrice * 100) / 100,
        currency: "USD",
        status: "CREATED",
        region: this.#pick(REGIONS),
        timestamp: now,
      },
    };
  }

  #payment(id: number, customerId: string, time: number): ProducedRecord {
    const typical = this.#typicalPayment[Number(customerId.slice(1)) % this.#typicalPayment.length];
    const unusual = this.#rand() < this.o.unusualAmountShare;
    const amount =
      Math.round(typical * (unusual ? 8 + this.#rand() * 12 : 0.5 + this.#rand()) * 100) / 100;
    return {
      key: customerId,
      value: {
        paymentId: `PAY${id}`,
        customerId,
        amount,
        currency: "USD",
        method: this.#pick(METHODS),
        status: this.#rand() < 0.05 ? "FAILED" : "SUCCESS",
        timestamp: time,
      },
    };
  }

  #malformed(id: number, now: number): ProducedRecord {
    const kind = Math.floor(this.#rand() * 3);
    if (kind === 0) return { key: `bad-${id}`, raw: `{"customerId": "C${id}", "amount": ` };
    if (kind === 1) return { key: `bad-${id}`, value: { customerId: `C${id}`, timestamp: now } };
    return { key: `bad-${id}`, value: { customerId: 42, amount: "lots", timestamp: now } };
  }
}
