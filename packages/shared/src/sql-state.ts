/**
 * SQLSTATE codes herd reports, by name. One table for the whole project so that the same failure
 * always carries the same code. Values follow PostgreSQL's errcodes.txt (Appendix A of the docs).
 */
export const SqlState = {
  successfulCompletion: "00000",
  connectionException: "08000",
  connectionFailure: "08006",
  transactionResolutionUnknown: "08007",
  protocolViolation: "08P01",
  featureNotSupported: "0A000",
  invalidParameterValue: "22023",
  invalidTextRepresentation: "22P02",
  numericValueOutOfRange: "22003",
  badCopyFileFormat: "22P04",
  nullValueNotAllowed: "22004",
  notNullViolation: "23502",
  activeSqlTransaction: "25001",
  inFailedSqlTransaction: "25P02",
  readOnlySqlTransaction: "25006",
  invalidAuthorizationSpecification: "28000",
  invalidPassword: "28P01",
  undefinedTable: "42P01",
  undefinedColumn: "42703",
  undefinedParameter: "42P02",
  undefinedFunction: "42883",
  undefinedObject: "42704",
  duplicateTable: "42P07",
  duplicateObject: "42710",
  wrongObjectType: "42809",
  invalidTableDefinition: "42P16",
  datatypeMismatch: "42804",
  invalidForeignKey: "42830",
  syntaxError: "42601",
  serializationFailure: "40001",
  deadlockDetected: "40P01",
  objectInUse: "55006",
  objectNotInPrerequisiteState: "55000",
  tooManyConnections: "53300",
  adminShutdown: "57P01",
  cannotConnectNow: "57P03",
  queryCanceled: "57014",
  configFileError: "F0000",
  internalError: "XX000",
  dataCorrupted: "XX001",
} as const;

export type SqlStateName = keyof typeof SqlState;
export type SqlStateCode = (typeof SqlState)[SqlStateName];
