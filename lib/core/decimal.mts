// Exact decimal sums of quantities. A double cannot add 0.1 ten thousand times to 1000 (it
// gives 999.9999999999062), and a bill must not drift by the number of rows it was made of.
// Written by hand because the sums need only addition and one rounding: a decimal library
// would be a dependency for twenty lines.
//
// Each addend is the decimal a person wrote: the shortest decimal that reads back as the same
// double (what `String(n)` prints), so "0.1" adds as 1/10, not as the double nearest to it.
// The sum is kept exact, as an integer count of 10^-SUM_FRACTION_DIGITS, and rounded once, at
// the end, to QUANTITY_FRACTION_DIGITS (half to even), then read as the nearest double: the
// only form the API takes.

/** Fraction digits a summed quantity keeps: 9, so every sum up to 10^6 reads back exactly as a double (15 significant digits). */
export const QUANTITY_FRACTION_DIGITS = 9;
/** Fraction digits the running sum keeps: every double's shortest decimal from 10^-3 up has at most 20. */
export const SUM_FRACTION_DIGITS = 20;

/** Units of 10^-9 a double can count exactly: the fast path's limit. */
const FAST_LIMIT = Number.MAX_SAFE_INTEGER;
const FAST_SCALE = 10 ** QUANTITY_FRACTION_DIGITS;
const FAST_TO_SUM = 10n ** BigInt(SUM_FRACTION_DIGITS - QUANTITY_FRACTION_DIGITS);

/**
 * An exact running sum of positive quantities.
 *
 * @example
 * const sum = new DecimalSum();
 * for (let i = 0; i < 10_000; i++) sum.add(0.1);
 * sum.toNumber() // 1000
 */
export class DecimalSum {
  /** Most addends have at most 9 fraction digits: counted here, in units of 10^-9, while a double counts them exactly. */
  #units = 0;
  /** The rest, and the fast part once it would pass 2^53, in units of 10^-20. */
  #exact = 0n;
  #count = 0;

  /** Adds `quantity` (a finite number) as the decimal it prints as. */
  add(quantity: number): void {
    this.#count++;
    const units = Math.round(quantity * FAST_SCALE);
    // units / 10^9 is the double nearest to units × 10^-9: equal to `quantity` exactly when
    // the quantity's decimal has at most 9 fraction digits (both are the nearest double to it).
    if (units / FAST_SCALE === quantity && Number.isSafeInteger(units)) {
      if (this.#units + units <= FAST_LIMIT) {
        this.#units += units;
        return;
      }
      this.#exact += BigInt(this.#units) * FAST_TO_SUM;
      this.#units = units;
      return;
    }
    this.#exact += decimalUnits(quantity);
  }

  /** How many quantities were added. */
  get count(): number {
    return this.#count;
  }

  /** The exact sum, in units of 10^-20. */
  get units(): bigint {
    return this.#exact + BigInt(this.#units) * FAST_TO_SUM;
  }

  /** The sum rounded once (half to even) to QUANTITY_FRACTION_DIGITS, as text: `"1000"`, `"0.3"`. */
  toDecimalString(): string {
    return formatUnits(roundHalfEven(this.units, SUM_FRACTION_DIGITS - QUANTITY_FRACTION_DIGITS), QUANTITY_FRACTION_DIGITS);
  }

  /** The rounded sum as the nearest double. */
  toNumber(): number {
    return Number(this.toDecimalString());
  }
}

/** A number's shortest decimal (`String(n)`, exponent form included) in units of 10^-20; digits below that are rounded half to even. */
export function decimalUnits(n: number): bigint {
  if (!Number.isFinite(n)) throw new RangeError(`Cannot add ${n}: not a finite number`);
  const text = String(Math.abs(n));
  const [mantissa, exp = "0"] = text.split("e");
  const [whole, fraction = ""] = mantissa.split(".");
  // value = digits × 10^(exponent - fraction.length)
  const shift = Number(exp) - fraction.length + SUM_FRACTION_DIGITS;
  const digits = BigInt(whole + fraction);
  const units = shift >= 0 ? digits * 10n ** BigInt(shift) : roundHalfEven(digits, -shift);
  return n < 0 ? -units : units;
}

/** `value` / 10^drop, rounded half to even. */
function roundHalfEven(value: bigint, drop: number): bigint {
  if (drop <= 0) return value;
  const divisor = 10n ** BigInt(drop);
  const negative = value < 0n;
  const v = negative ? -value : value;
  let q = v / divisor;
  const r = v % divisor;
  if (r * 2n > divisor || (r * 2n === divisor && q % 2n === 1n)) q += 1n;
  return negative ? -q : q;
}

/** Units of 10^-digits as a plain decimal without trailing zeros. */
function formatUnits(units: bigint, digits: number): string {
  const negative = units < 0n;
  const v = negative ? -units : units;
  const scale = 10n ** BigInt(digits);
  const whole = v / scale;
  const fraction = (v % scale).toString().padStart(digits, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}
