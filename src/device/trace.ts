/**
 * A device model's trace sink: one named event with structured detail. Event names follow the
 * convention of QEMU's hw/nvme/trace-events: `_err_` for an error, `_ub_` for undefined behaviour
 * the guest caused, plain names for normal operation.
 */
export type Trace = (event: string, detail: Record<string, unknown>) => void;
