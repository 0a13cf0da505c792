"""ECS errors as ECS sends them: each class carries its code and HTTP status once.

The codes, statuses and messages are those of the ReInitDisk API page
(docs/reference/ReInitDisk-api.txt), ECS's common error codes and the real
gateway's answers quoted in public reports; emulator/README.md names the source of each.
"""


class EcsError(Exception):
    code = "InternalError"
    status = 500
    message = "The request processing has failed due to some unknown error, exception or failure."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


def _error(name: str, code: str, status: int, message: str) -> type[EcsError]:
    return type(name, (EcsError,), {"code": code, "status": status, "message": message})


# Request-level errors (common to every action).
MissingParameter = _error("MissingParameter", "MissingParameter", 400, "The input parameter that is mandatory for processing this request is not supplied.")
InvalidParameter = _error("InvalidParameter", "InvalidParameter", 400, "The specified parameter is not valid.")
InvalidAction = _error("InvalidAction", "InvalidAction.NotFound", 404, "Specified api is not found, please check your url and method.")
InvalidRegionId = _error("InvalidRegionId", "InvalidRegionId.MalFormed", 400, "The specified RegionId is not valid.")
Throttling = _error("Throttling", "Throttling", 400, "Request was denied due to request throttling.")
ServiceUnavailable = _error("ServiceUnavailable", "ServiceUnavailable", 503, "The request has failed due to a temporary failure of the server.")
InternalError = EcsError

# Authentication (ECS answers these before it looks at the action's parameters).
IncompleteSignature = _error("IncompleteSignature", "IncompleteSignature", 400, "The request signature does not conform to Aliyun standards.")
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", "SignatureDoesNotMatch", 400, "The request signature we calculated does not match the signature you provided.")
InvalidAccessKeyIdNotFound = _error("InvalidAccessKeyIdNotFound", "InvalidAccessKeyId.NotFound", 404, "Specified access key is not found.")
InvalidSecurityTokenMismatch = _error("InvalidSecurityTokenMismatch", "InvalidSecurityToken.MismatchWithAccessKey", 400, "The Security Token does not match with Access Key.")
InvalidSecurityTokenExpired = _error("InvalidSecurityTokenExpired", "InvalidSecurityToken.Expired", 400, "Specified SecurityToken is expired.")
MissingSecurityToken = _error("MissingSecurityToken", "MissingSecurityToken", 400, "SecurityToken is mandatory for this action.")
# RAM refused the call (the answer every Alibaba Cloud RPC API gives; emulator/ram).
ForbiddenRam = _error("ForbiddenRam", "Forbidden.RAM", 403, "User not authorized to operate on the specified resource, or this API doesn't support RAM.")
InvalidTimeStampExpired = _error("InvalidTimeStampExpired", "InvalidTimeStamp.Expired", 400, "Specified time stamp or date value is expired.")
IllegalTimestamp = _error("IllegalTimestamp", "IllegalTimestamp", 400, 'The input parameter "Timestamp" that is mandatory for processing this request is not supplied.')
SignatureNonceUsed = _error("SignatureNonceUsed", "SignatureNonceUsed", 400, "Specified signature nonce was used already.")

# Resources.
InvalidDiskIdNotFound = _error("InvalidDiskIdNotFound", "InvalidDiskId.NotFound", 404, "The specified disk does not exist.")
InvalidInstanceIdNotFound = _error("InvalidInstanceIdNotFound", "InvalidInstanceId.NotFound", 404, "The specified InstanceId does not exist.")
IncorrectDiskStatus = _error("IncorrectDiskStatus", "IncorrectDiskStatus", 403, "The current disk status does not support this operation.")
IncorrectInstanceStatus = _error("IncorrectInstanceStatus", "IncorrectInstanceStatus", 403, "The current status of the resource does not support this operation.")

# ReInitDisk, one class a row of the API page's error table.
InvalidPasswordMalformed = _error("InvalidPasswordMalformed", "InvalidPassword.Malformed", 400, 'The specified parameter "Password" is not valid.')
InvalidKeyPairNameNotFound = _error("InvalidKeyPairNameNotFound", "InvalidKeyPairName.NotFound", 400, "The specified KeyPairName does not exist.")
DiskCategoryNotSupported = _error("DiskCategoryNotSupported", "DiskCategory.OperationNotSupported", 400, "The operation is not supported to the specified disk due to its disk category.")
InstantAccessSnapshots = _error("InstantAccessSnapshots", "DiskHasSnapshotsWithInstantAccessEnabled.OperationNotSupported", 400, "The operation is not supported to the specified disk that have snapshots with InstantAccess enabled.")
InstanceLockedForSecurity = _error("InstanceLockedForSecurity", "InstanceLockedForSecurity", 403, "The instance is locked due to security.")
InstanceExpiredOrInArrears = _error("InstanceExpiredOrInArrears", "InstanceExpiredOrInArrears", 403, "The specified operation is denied as your prepay instance is expired (prepay mode) or in arrears (afterpay mode).")
OperationDenied = _error("OperationDenied", "OperationDenied", 403, "The snapshot which is used to create the specified disk has been deleted.")
DiskCreatingSnapshot = _error("DiskCreatingSnapshot", "DiskCreatingSnapshot", 403, "The operation is denied due to a snapshot of the specified disk is not completed yet.")
SharedImageDeleted = _error("SharedImageDeleted", "SharedImageDeleted", 403, "The specified image by others shared is deleted.")
WindowsKeyPair = _error("WindowsKeyPair", "DependencyViolation.WindowsInstance", 403, "The instance creating is windows, cannot use ssh key pair to login.")
DiskFromCloned = _error("DiskFromCloned", "InvalidDisk.DiskFromClonedNotSupport", 403, "The specified disk is cloned from a source disk, so not support reinit")
MultiAttachDisk = _error("MultiAttachDisk", "InvalidOperation.MultiAttachDisk", 403, "Multi attach disk does not support this operation.")
HibernationConfigured = _error("HibernationConfigured", "HibernationConfigured.InstanceOperationForbidden", 403, "The operation is not permitted due to limit of the hibernation configured instance.")
InvalidSourceSnapshot = _error("InvalidSourceSnapshot", "InvalidSourceSnapshot", 403, "The source snapshot of the disk has been deleted and cannot support the current operation.")
ReInitUnsupported = _error("ReInitUnsupported", "InvalidOperation.ReInitUnsupported", 403, "The specified disk does not support reInit.")
SnapshotTooOld = _error("SnapshotTooOld", "InvalidSnapshot.TooOld", 403, "The disk is created from a snapshotId made before 2013-07-15, it cannot be re-initiated.")
ImageNotExist = _error("ImageNotExist", "InvalidDiskId.OperationNotSupported", 404, "The operation is not supported due to image not exist.")

# CreateSnapshot and DescribeSnapshots: rows of the error tables of their API pages
# (ECS API 2014-05-26: CreateSnapshot, doc-detail/25524; DescribeSnapshots), codes and statuses as listed there.
InvalidSnapshotNameMalformed = _error("InvalidSnapshotNameMalformed", "InvalidSnapshotName.Malformed", 400, "The specified SnapshotName is wrongly formed.")
InvalidDescriptionMalformed = _error("InvalidDescriptionMalformed", "InvalidDescription.Malformed", 404, "The specified description is wrongly formed.")
SnapshotIncorrectInstanceStatus = _error("SnapshotIncorrectInstanceStatus", "IncorrectInstanceStatus", 400, "The current status of the resource does not support this operation.")
SnapshotInstanceLocked = _error("SnapshotInstanceLocked", "InstanceLockedForSecurity", 403, "The disk attached instance is locked due to security.")
CreatingSnapshotInProgress = _error("CreatingSnapshotInProgress", "IncorrectDiskStatus.CreatingSnapshot", 403, "A previous snapshot creation is in process.")
QuotaExceedSnapshot = _error("QuotaExceedSnapshot", "QuotaExceed.Snapshot", 403, "The snapshot quota exceeds.")
IdempotentParameterMismatch = _error("IdempotentParameterMismatch", "IdempotentParameterMismatch", 403, "The specified clientToken is used.")
DuplicateTagKey = _error("DuplicateTagKey", "Duplicate.TagKey", 400, "The Tag.N.Key contain duplicate key.")
InvalidTagKeyMalformed = _error("InvalidTagKeyMalformed", "InvalidTagKey.Malformed", 400, "The specified Tag.n.Key is not valid.")
InvalidTagValueMalformed = _error("InvalidTagValueMalformed", "InvalidTagValue.Malformed", 400, "The specified Tag.n.Value is not valid.")
QuotaExceedTags = _error("QuotaExceedTags", "QuotaExceed.Tags", 403, "The number of tags exceeds the limit of 20.")
# TagResources: a resource that is not there (ECS's common code for an unknown resource id).
InvalidResourceIdNotFound = _error("InvalidResourceIdNotFound", "InvalidResourceId.NotFound", 404, "The specified ResourceIds are not found in our records.")
InvalidSnapshotIdsMalformed = _error("InvalidSnapshotIdsMalformed", "InvalidSnapshotIds.Malformed", 403, "The amount of specified specified snapshot Ids exceeds the limit.")
InvalidStatusNotFound = _error("InvalidStatusNotFound", "InvalidStatus.NotFound", 404, "The specified Status is not found")
InvalidSnapshotTypeNotFound = _error("InvalidSnapshotTypeNotFound", "InvalidSnapshotType.NotFound", 404, "The specfied SnapshotType is not found")
InvalidSourceDiskType = _error("InvalidSourceDiskType", "InvalidSourceDiskType", 404, "The specifed SourceDiskType is not valid")
InvalidTagMismatch = _error("InvalidTagMismatch", "InvalidTag.Mismatch", 400, "The specified Tag.n.Key and Tag.n.Value are not match.")
InvalidTagCount = _error("InvalidTagCount", "InvalidTagCount", 400, "The specified tags are beyond the permitted range.")
