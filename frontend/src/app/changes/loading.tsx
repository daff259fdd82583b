import Loading from "@/components/Loading";

export default function ChangesLoading() {
  return <Loading what="change log" />;
}
