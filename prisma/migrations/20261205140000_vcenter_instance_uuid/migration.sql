-- The vCenter's own instance UUID (ServiceContent.about.instanceUuid), read when it is registered:
-- the same vCenter cannot be registered twice under other names or URL spellings.
ALTER TABLE "vcenters" ADD COLUMN "instance_uuid" TEXT;

CREATE UNIQUE INDEX "vcenters_instance_uuid_key" ON "vcenters"("instance_uuid");
