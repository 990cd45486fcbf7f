/**
 * The BSS event contracts (see shared/spec/events-and-rules.md), as zod schemas. Extra fields
 * are allowed and kept. Event time is `timestamp` (epoch ms or ISO-8601); the engine has
 * already turned it into each record's timestamp.
 */
import { z } from "zod";

const id = z.string().min(1);
const eventTime = z.union([z.number().finite(), z.iso.datetime({ offset: true })]);

export const CustomerActivityEvent = z.looseObject({
  customerId: id,
  activityType: z.string().regex(
    /^[A-Z][A-Z_]*$/,
    "an upper-case word such as LOGIN or ADD_TO_CART",
  ),
  timestamp: eventTime,
  sessionId: z.string().optional(),
  channel: z.string().optional(),
  productId: z.string().optional(),
  category: z.string().optional(),
});
export type CustomerActivityEvent = z.output<typeof CustomerActivityEvent>;

export const OrderEvent = z.looseObject({
  orderId: id,
  customerId: id,
  productId: id,
  quantity: z.number().positive(),
  unitPrice: z.number().nonnegative(),
  totalAmount: z.number().nonnegative(),
  currency: z.string().min(1),
  status: z.enum(["CREATED", "PAID", "CANCELLED"]),
  timestamp: eventTime,
  category: z.string().optional(),
  region: z.string().optional(),
});
export type OrderEvent = z.output<typeof OrderEvent>;

export const PaymentEvent = z.looseObject({
  paymentId: id,
  customerId: id,
  amount: z.number().positive(),
  currency: z.string().min(1),
  method: z.string().min(1),
  status: z.enum(["SUCCESS", "FAILED"]),
  timestamp: eventTime,
  orderId: z.string().optional(),
});
export type PaymentEvent = z.output<typeof PaymentEvent>;

export const CustomerInfo = z.looseObject({
  customerId: id,
  tier: z.enum(["BRONZE", "SILVER", "GOLD", "PLATINUM"]),
  region: z.string().min(1),
  name: z.string().optional(),
  segment: z.string().optional(),
});
export type CustomerInfo = z.output<typeof CustomerInfo>;

export const ProductViewEvent = z.looseObject({
  customerId: id,
  productId: id,
  category: z.string().min(1),
  timestamp: eventTime,
  price: z.number().nonnegative().optional(),
});
export type ProductViewEvent = z.output<typeof ProductViewEvent>;
