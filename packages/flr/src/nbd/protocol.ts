/**
 * Constants of the NBD protocol (fixed newstyle handshake, option haggling,
 * transmission with simple and structured replies), as set out in the NBD
 * protocol document (NetworkBlockDevice/nbd, doc/proto.md). All integers are
 * big-endian on the wire.
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x0003e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
/** Client flags (32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits). */
export const TF_HAS_FLAGS = 1 << 0;
export const TF_READ_ONLY = 1 << 1;
export const TF_SEND_FLUSH = 1 << 2;
export const TF_SEND_FUA = 1 << 3;
export const TF_ROTATIONAL = 1 << 4;
export const TF_SEND_TRIM = 1 << 5;
export const TF_SEND_WRITE_ZEROES = 1 << 6;
export const TF_SEND_DF = 1 << 7;
export const TF_CAN_MULTI_CONN = 1 << 8;

/** Options. */
export const OPT_EXPORT_NAME = 1;
export const OPT_ABORT = 2;
export const OPT_LIST = 3;
export const OPT_STARTTLS = 5;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_LIST_META_CONTEXT = 9;
export const OPT_SET_META_CONTEXT = 10;

/** Option reply types. */
export const REP_ACK = 1;
export const REP_SERVER = 2;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
const ERR = 0x80000000;
export const REP_ERR_UNSUP = ERR + 1;
export const REP_ERR_POLICY = ERR + 2;
export const REP_ERR_INVALID = ERR + 3;
export const REP_ERR_PLATFORM = ERR + 4;
export const REP_ERR_TLS_REQD = ERR + 5;
export const REP_ERR_UNKNOWN = ERR + 6;
export const REP_ERR_SHUTDOWN = ERR + 7;
export const REP_ERR_BLOCK_SIZE_REQD = ERR + 8;
export const REP_ERR_TOO_BIG = ERR + 9;

/** Information types of NBD_REP_INFO. */
export const INFO_EXPORT = 0;
export const INFO_NAME = 1;
export const INFO_DESCRIPTION = 2;
export const INFO_BLOCK_SIZE = 3;

/** Commands. */
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_CACHE = 5;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;

/** Command flags. */
export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;

/** Structured reply flags and types. */
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR = (1 << 15) + 1;
export const REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** base:allocation flags. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
export const META_BASE_ALLOCATION = 'base:allocation';

/** Error values (errno numbers as the protocol fixes them). */
export const EPERM = 1;
export const EIO = 5;
export const ENOMEM = 12;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EOVERFLOW = 75;
export const ENOTSUP = 95;
export const ESHUTDOWN = 108;

export const ERROR_NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [EIO]: 'EIO',
  [ENOMEM]: 'ENOMEM',
  [EINVAL]: 'EINVAL',
  [ENOSPC]: 'ENOSPC',
  [EOVERFLOW]: 'EOVERFLOW',
  [ENOTSUP]: 'ENOTSUP',
  [ESHUTDOWN]: 'ESHUTDOWN',
};

/** Largest payload an option may carry here (names are at most 4096 bytes; queries few). */
export const MAX_OPTION_LENGTH = 64 * 1024;
/** Largest read we serve in one request (the protocol's customary maximum). */
export const MAX_REQUEST = 32 * 1024 * 1024;
/** Preferred request size we advertise in NBD_INFO_BLOCK_SIZE. */
export const PREFERRED_BLOCK = 4096;
